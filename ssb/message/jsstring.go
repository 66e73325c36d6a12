package message

import "github.com/scuttlego/scuttle/ssb/refs"

// This file holds JavaScript's ToString and loose equality on Values; the
// string arithmetic itself (WTF-8, UTF-16 lengths, the WHATWG UTF-8
// decoder) is in internal/jsstring.

// appendJSString appends String(v), JavaScript's ToString, for a value
// that JSON.parse can produce.
func appendJSString(dst []byte, v *Value) []byte {
	switch v.kind {
	case Null:
		return append(dst, "null"...)
	case Bool:
		if v.num != 0 {
			return append(dst, "true"...)
		}
		return append(dst, "false"...)
	case Number:
		return appendJSNumber(dst, v.num)
	case String:
		return append(dst, v.str...)
	case Array: // Array#toString is join(","), with "" for null
		for i := range v.arr {
			if i > 0 {
				dst = append(dst, ',')
			}
			if v.arr[i].kind != Null {
				dst = appendJSString(dst, &v.arr[i])
			}
		}
		return dst
	}
	return append(dst, "[object Object]"...)
}

// looseEqualsMessageID reports whether v == id in JavaScript (the
// abstract equality ssb-validate uses for previous), where id is a message
// id. An id starts with '%', so no number, boolean or null equals it; an
// object or array is compared as its ToString, so ["%…=.sha256"] does.
func looseEqualsMessageID(v *Value, id refs.Message) bool {
	switch v.kind {
	case String:
		got, ok := parseMessageID(v.str)
		return ok && got == id
	case Array, Object:
		return string(appendJSString(nil, v)) == id.String()
	}
	return false
}
