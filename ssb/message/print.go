package message

import (
	"math"

	"github.com/scuttlego/scuttle/internal/jsjson"
	"github.com/scuttlego/scuttle/internal/jsstring"
)

// AppendPretty appends v as V8's JSON.stringify(v, null, 2) writes it: the
// canonical form that SSB signs and hashes. Objects and arrays span lines
// indented by two spaces per level, "key": value pairs have one space after
// the colon, an empty object or array is written {} or [], and there is no
// newline at the end. Strings and numbers are written as in AppendCompact.
func (v Value) AppendPretty(dst []byte) []byte { return appendPretty(dst, &v, 0) }

// AppendCompact appends v as V8's JSON.stringify(v) writes it, the form SSB
// sends over the wire:
//
//   - strings follow ECMAScript's QuoteJSONString: '"', '\\', \b, \f, \n,
//     \r and \t are escaped, other code units below U+0020 and lone
//     surrogates are written as \u00xx and \udxxx with lowercase hex, and
//     everything else, U+2028, U+2029 and DEL included, is raw UTF-8;
//   - numbers follow Number#toString: the shortest digits that round-trip,
//     in exponent form below 1e-6 and from 1e21 (1e-7, 1e+21), negative zero
//     as 0, and NaN and the infinities as null.
func (v Value) AppendCompact(dst []byte) []byte { return appendCompact(dst, &v) }

const spaces = "                                                                "

func newline(dst []byte, depth int) []byte {
	dst = append(dst, '\n')
	for n := 2 * depth; n > 0; n -= len(spaces) {
		dst = append(dst, spaces[:min(n, len(spaces))]...)
	}
	return dst
}

func appendPretty(dst []byte, v *Value, depth int) []byte {
	switch v.kind {
	case Array:
		if len(v.arr) == 0 {
			return append(dst, '[', ']')
		}
		dst = append(dst, '[')
		for i := range v.arr {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = newline(dst, depth+1)
			dst = appendPretty(dst, &v.arr[i], depth+1)
		}
		return append(newline(dst, depth), ']')
	case Object:
		return appendPrettyMembers(dst, v.obj, depth)
	}
	return appendScalar(dst, v)
}

// appendPrettyMembers appends an object of members ms, as appendPretty.
func appendPrettyMembers(dst []byte, ms []Member, depth int) []byte {
	if len(ms) == 0 {
		return append(dst, '{', '}')
	}
	dst = append(dst, '{')
	for i := range ms {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = newline(dst, depth+1)
		dst = jsstring.AppendQuote(dst, ms[i].Key)
		dst = append(dst, ':', ' ')
		dst = appendPretty(dst, &ms[i].Value, depth+1)
	}
	return append(newline(dst, depth), '}')
}

func appendCompact(dst []byte, v *Value) []byte {
	switch v.kind {
	case Array:
		dst = append(dst, '[')
		for i := range v.arr {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = appendCompact(dst, &v.arr[i])
		}
		return append(dst, ']')
	case Object:
		dst = append(dst, '{')
		for i := range v.obj {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = jsstring.AppendQuote(dst, v.obj[i].Key)
			dst = append(dst, ':')
			dst = appendCompact(dst, &v.obj[i].Value)
		}
		return append(dst, '}')
	}
	return appendScalar(dst, v)
}

func appendScalar(dst []byte, v *Value) []byte {
	switch v.kind {
	case Bool:
		if v.num != 0 {
			return append(dst, "true"...)
		}
		return append(dst, "false"...)
	case Number:
		return jsjson.AppendFloat(dst, v.num)
	case String:
		return jsstring.AppendQuote(dst, v.str)
	}
	return append(dst, "null"...)
}

// appendJSNumber appends Number#toString of f, which differs from JSON for
// NaN and the infinities.
func appendJSNumber(dst []byte, f float64) []byte {
	switch {
	case math.IsNaN(f):
		return append(dst, "NaN"...)
	case math.IsInf(f, 1):
		return append(dst, "Infinity"...)
	case math.IsInf(f, -1):
		return append(dst, "-Infinity"...)
	}
	return jsjson.AppendFloat(dst, f)
}

// reindent appends the pretty form of the compact JSON text src, as
// printed by AppendCompact: the two differ only in whitespace.
func reindent(dst, src []byte) []byte {
	depth := 0
	for i := 0; i < len(src); i++ {
		switch c := src[i]; c {
		case '"':
			j := i + 1
			for j < len(src) && src[j] != '"' {
				if src[j] == '\\' {
					j++
				}
				j++
			}
			j = min(j+1, len(src))
			dst = append(dst, src[i:j]...)
			i = j - 1
		case '{', '[':
			if i+1 < len(src) && (src[i+1] == '}' || src[i+1] == ']') {
				dst = append(dst, c, src[i+1])
				i++
				continue
			}
			depth++
			dst = newline(append(dst, c), depth)
		case '}', ']':
			depth = max(depth-1, 0)
			dst = append(newline(dst, depth), c)
		case ',':
			dst = newline(append(dst, ','), depth)
		case ':':
			dst = append(dst, ':', ' ')
		default:
			dst = append(dst, c)
		}
	}
	return dst
}
