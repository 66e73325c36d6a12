package links

import (
	"strings"
	"unicode/utf16"

	"github.com/scuttlego/scuttle/ssb/message"
)

// Which content fields count as links: three walks, each as its
// JavaScript module does it.

// get is JavaScript's o[k] on a JSON value: the member of an object, or
// nothing (undefined) for anything else.
func get(v message.Value, k string) (message.Value, bool) {
	if v.Kind() != message.Object {
		return message.Value{}, false
	}
	return v.Get(k)
}

// truthy is JavaScript's truthiness of a JSON value (missing is false).
func truthy(v message.Value, ok bool) bool {
	if !ok {
		return false
	}
	switch v.Kind() {
	case message.Null:
		return false
	case message.Bool:
		return v.Bool()
	case message.Number:
		n := v.Number()
		return n != 0 && n == n
	case message.String:
		return v.Str() != ""
	}
	return true
}

// A found link: the field it was in and the link object (a string link is
// {link: s}).
type found struct {
	rel  string
	link string
	obj  message.Value // the object, or the zero Value for a string link
}

// indexLinks is ssb-msgs 5's indexLinks(obj, each) with no options: the
// top-level fields of the content (found by toMsgContent) whose value, or
// each element of whose array (or array-like object) value, is a link
// string or an object with a link string. Null elements are skipped (they
// make JavaScript throw).
func indexLinks(obj message.Value) []found { return linksIn(toMsgContent(obj)) }

// linksIn is indexLinks past toMsgContent: the links of root's fields.
func linksIn(root message.Value) []found {
	if root.Kind() != message.Object {
		return nil
	}
	var out []found
	for _, m := range root.Members() {
		if !truthy(m.Value, true) {
			continue
		}
		for _, e := range toArray(m.Value) {
			var r message.Value
			var ok bool
			if e.Kind() == message.String {
				r, ok = e, true
			} else {
				r, ok = get(e, "link")
			}
			if !ok || r.Kind() != message.String || !isLink(r.Str()) {
				continue
			}
			f := found{rel: m.Key, link: r.Str()}
			if e.Kind() == message.Object {
				f.obj = e
			}
			out = append(out, f)
		}
	}
	return out
}

// sameObject says whether a and b are the same object (not equal ones:
// the same members).
func sameObject(a, b message.Value) bool {
	if a.Kind() != message.Object || b.Kind() != message.Object {
		return false
	}
	am, bm := a.Members(), b.Members()
	return len(am) == len(bm) && (len(am) == 0 || &am[0] == &bm[0])
}

// toMsgContent is ssb-msgs' duck typing: obj.value.content when it has a
// truthy type, else obj.content when it has one, else obj.
func toMsgContent(obj message.Value) message.Value {
	if val, ok := get(obj, "value"); truthy(val, ok) {
		if c, ok := get(val, "content"); truthy(c, ok) {
			if t, ok := get(c, "type"); truthy(t, ok) {
				return c
			}
		}
	}
	if c, ok := get(obj, "content"); truthy(c, ok) {
		if t, ok := get(c, "type"); truthy(t, ok) {
			return c
		}
	}
	return obj
}

// toArray is ssb-msgs' toArray(v, false): an array's elements, an
// array-like object's (truthy "0", "1", ... members), or v alone.
func toArray(v message.Value) []message.Value {
	switch v.Kind() {
	case message.Array:
		return v.Elems()
	case message.Object:
		var arr []message.Value
		for i := 0; ; i++ {
			e, ok := v.Get(itoa(i))
			if !truthy(e, ok) {
				break
			}
			arr = append(arr, e)
		}
		if len(arr) > 0 {
			return arr
		}
	}
	return []message.Value{v}
}

func itoa(i int) string {
	if i < 10 {
		return string(rune('0' + i))
	}
	return itoa(i/10) + string(rune('0'+i%10))
}

// refType is ssb-ref 2.16's type for the three kinds of ids: "feed",
// "msg", "blob", or "": a sigil, 32 bytes of canonical base64, and a
// suffix, /^@[a-zA-Z0-9/+]{42}[AEIMQUYcgkosw048]=\.(?:sha256|ed25519)$/
// for feeds and /^%…=\.sha256$/ and /^&…=\.sha256$/ for messages and
// blobs, matched by hand (every message is tested many times).
func refType(s string) string {
	if len(s) < 52 || !isRefBody(s[1:45]) {
		return ""
	}
	suffix := s[45:]
	switch {
	case s[0] == '@' && (suffix == ".sha256" || suffix == ".ed25519"):
		return "feed"
	case s[0] == '%' && suffix == ".sha256":
		return "msg"
	case s[0] == '&' && suffix == ".sha256":
		return "blob"
	}
	return ""
}

// isRefBody matches [a-zA-Z0-9/+]{42}[AEIMQUYcgkosw048]= (44 bytes).
func isRefBody(b string) bool {
	for i := range 42 {
		if !isBase64Char(b[i]) {
			return false
		}
	}
	return strings.IndexByte("AEIMQUYcgkosw048", b[42]) >= 0 && b[43] == '='
}

func isBase64Char(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '/' || c == '+'
}

// isLink is ssb-ref's isLink: an id, optionally followed by a query
// ("?unbox=…").
func isLink(s string) bool {
	if i := strings.IndexByte(s, '?'); i >= 0 {
		s = s[:i]
	}
	return refType(s) != ""
}

// A dbLink is an entry of ssb-db's links index.
type dbLink struct {
	rel, link string
}

// dbLinks are the links ssb-db 20's links index records for a message
// value: indexLinks over the content when it is an object (a box we
// cannot open has none).
func dbLinks(value message.Value) []dbLink {
	content, _ := get(value, "content")
	if content.Kind() != message.Object {
		return nil
	}
	fs := indexLinks(content)
	out := make([]dbLink, len(fs))
	for i, f := range fs {
		out[i] = dbLink{rel: f.rel, link: f.link}
	}
	return out
}

// A record is one link of ssb-links (links2): {source, dest, rel, ts}.
type record struct {
	source, dest string
	rel          jsv // an array
	ts           float64
}

// links2Records is ssb-links 3's extractLinks: indexLinks over the whole
// message value (so the content when it has a type, else — a box we
// cannot open — the value's own fields: previous and author are links),
// with rel turned into an array carrying what the link says.
func links2Records(value message.Value, ts float64) []record {
	return recordsOf(value, indexLinks(value), ts)
}

// recordsOf is links2Records with indexLinks(value) already found.
func recordsOf(value message.Value, links []found, ts float64) []record {
	content, _ := get(value, "content")
	author, _ := get(value, "author")
	var out []record
	for _, f := range links {
		ln := func(k string) jsv { v, ok := get(f.obj, k); return noObjects(v, ok) }
		var rel []jsv
		switch f.rel {
		case "vote":
			rel = []jsv{jsStr("vote"), ln("value")}
		case "flag":
			rel = []jsv{jsStr("flag"), ln("reason")}
		case "mentions":
			switch f.link[0] {
			case '@':
				name := ""
				if n, ok := get(f.obj, "name"); ok && n.Kind() == message.String {
					name = n.Str()
				}
				rel = []jsv{jsStr("mentions"), jsStr("@" + strings.ToLower(name))}
			case '&':
				name := ln("filename")
				if !jsTruthy(name) {
					name = ln("name")
				}
				rel = []jsv{jsStr("mentions"), name, ln("size")}
			default:
				rel = []jsv{jsStr("mentions")}
			}
		case "about":
			if n, ok := get(content, "name"); ok && n.Kind() == message.String {
				rel = []jsv{jsStr("about"), jsStr(n.Str())}
			} else {
				rel = []jsv{jsStr("about")}
			}
		case "image":
			rel = []jsv{jsStr("image"), ln("type"), ln("size")}
		case "contact":
			fl, ok1 := get(content, "following")
			bl, ok2 := get(content, "blocking")
			rel = []jsv{jsStr("contact"), noObjects(fl, ok1), noObjects(bl, ok2)}
		default:
			rel = []jsv{jsStr(f.rel)}
		}
		out = append(out, record{source: author.Str(), dest: f.link, rel: jsArr(rel...), ts: ts})
	}
	return out
}

// noObjects is ssb-links' noObjects: objects as their JSON text, arrays
// element by element; missing is undefined.
func noObjects(v message.Value, ok bool) jsv {
	if !ok {
		return jsv{kind: jsUndefined}
	}
	switch v.Kind() {
	case message.Object:
		return jsStr(string(v.AppendCompact(nil)))
	case message.Array:
		a := make([]jsv, len(v.Elems()))
		for i, e := range v.Elems() {
			a[i] = noObjects(e, true)
		}
		return jsArr(a...)
	}
	j, _ := fromJSON(v)
	return j
}

func jsTruthy(v jsv) bool {
	switch v.kind {
	case jsNull, jsUndefined:
		return false
	case jsBool:
		return v.n != 0
	case jsNumber:
		return v.n != 0 && v.n == v.n
	case jsString:
		return v.s != ""
	}
	return true
}

// backlinkDests is ssb-backlinks' extractLinks: every value anywhere in
// the content that is a feed, message or blob id or a channel ("#name",
// shorter than 30), the top-level "channel" string read as "#channel";
// each once, in the order met.
func backlinkDests(content message.Value) []string {
	var out []string
	seen := map[string]bool{}
	add := func(s string) {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	var walk func(v message.Value, top string, depth int)
	walk = func(v message.Value, top string, depth int) {
		switch v.Kind() {
		case message.Object:
			for _, m := range v.Members() {
				walk(m.Value, map[bool]string{true: m.Key}[depth == 0], depth+1)
			}
			return
		case message.Array:
			for _, e := range v.Elems() {
				walk(e, "", depth+1)
			}
			return
		case message.String:
		default:
			return
		}
		s := v.Str()
		if depth == 1 && top == "channel" && jsLen(s) < 30 {
			s = "#" + strings.Map(func(r rune) rune {
				if jsSpace(r) {
					return -1
				}
				return r
			}, s)
		}
		if refType(s) != "" || isChannel(s) {
			add(s)
		}
	}
	walk(content, "", 0)
	return out
}

// isChannel is ssb-backlinks' channel test: /^#[^\s#]+$/, shorter than 30.
func isChannel(s string) bool {
	if len(s) < 2 || s[0] != '#' || jsLen(s) >= 30 {
		return false
	}
	for _, r := range s[1:] {
		if r == '#' || jsSpace(r) {
			return false
		}
	}
	return true
}

// jsLen is a string's length in UTF-16 code units.
func jsLen(s string) int {
	n := 0
	for _, r := range s {
		n += utf16.RuneLen(r)
	}
	return n
}

// jsSpace is JavaScript's \s.
func jsSpace(r rune) bool {
	switch r {
	case '\t', '\n', '\v', '\f', '\r', ' ', 0xa0, 0x1680, 0x2028, 0x2029, 0x202f, 0x205f, 0x3000, 0xfeff:
		return true
	}
	return r >= 0x2000 && r <= 0x200a
}
