package gossip

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"

	"github.com/scuttlego/scuttle/internal/jsjson"
)

// A digest is the line Go nodes exchange to reconcile (see the package
// documentation):
//
//	{"gossip":"digest","n":3,"ack":2,"req":true,"sent":57,"lostAck":0,"lost":0,"have":{"<public>":[lo,hi,...],...}}
//
// n numbers the sender's digests on the link and ack is the highest n the
// sender has received from the peer. A request (req) asks the peer for an
// answer, and says how many envelope lines the sender has written on the
// link (sent) and how many of them it knows the peer never got (lostAck);
// full asks for have in the answer.
// An answer says how many of the peer's lines the sender never got, as of
// the peer's last request (lost). have lists, for each publisher, the
// spans of seqs the sender has seen; it comes in the first digest of a
// link, and in an answer that reports new losses.
type digest struct {
	n, ack        uint64
	req           bool
	sent, lostAck uint64
	full          bool // the answer must carry have
	answer        bool
	lost          uint64
	have          map[string]spans // nil when absent
}

// maxDigestSpans bounds the spans of one publisher's entry.
const maxDigestSpans = 256

// appendDigest appends d's line without have, the closing brace and the
// newline.
func appendDigest(dst []byte, d *digest) []byte {
	dst = append(dst, digestPrefix...)
	dst = append(dst, `"digest","n":`...)
	dst = strconv.AppendUint(dst, d.n, 10)
	dst = append(dst, `,"ack":`...)
	dst = strconv.AppendUint(dst, d.ack, 10)
	if d.req {
		dst = append(dst, `,"req":true,"sent":`...)
		dst = strconv.AppendUint(dst, d.sent, 10)
		dst = append(dst, `,"lostAck":`...)
		dst = strconv.AppendUint(dst, d.lostAck, 10)
		if d.full {
			dst = append(dst, `,"full":true`...)
		}
	}
	if d.answer {
		dst = append(dst, `,"lost":`...)
		dst = strconv.AppendUint(dst, d.lost, 10)
	}
	return dst
}

// appendHave appends the have member of a digest: one entry per publisher
// given, in that order, until the line would pass limit bytes.
func appendHave(dst []byte, pubs []*publisher, limit int) []byte {
	dst = append(dst, `,"have":{`...)
	first := true
	for _, p := range pubs {
		mark := len(dst)
		if !first {
			dst = append(dst, ',')
		}
		dst = jsjson.AppendString(dst, p.key)
		dst = append(dst, ':', '[')
		for i, sp := range p.seen {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = strconv.AppendInt(dst, sp.lo, 10)
			dst = append(dst, ',')
			dst = strconv.AppendInt(dst, sp.hi, 10)
		}
		dst = append(dst, ']')
		if len(dst)+2 > limit {
			dst = dst[:mark]
			break
		}
		first = false
	}
	return append(dst, '}')
}

// decodeDigest parses a line that starts with digestPrefix. A line of an
// unknown kind ({"gossip":"other",...}) decodes to nil without error, so
// that later extensions pass through older nodes; so do members it does
// not know. Digests are frequent and can list thousands of publishers, so
// this is a small parser of its own rather than a JSON tree.
func decodeDigest(line []byte) (*digest, error) {
	p := digestParser{b: line}
	d, err := p.digest()
	if err != nil {
		return nil, fmt.Errorf("%w: digest at byte %d: %w", ErrShape, p.i, err)
	}
	return d, nil
}

type digestParser struct {
	b []byte
	i int
}

var (
	errJSON   = errors.New("invalid JSON")
	errNumber = errors.New("a seq must be an integer from 0 to 2^53-1")
)

func (p *digestParser) digest() (*digest, error) {
	d := new(digest)
	kind := ""
	err := p.object(func(key string) error {
		var err error
		switch key {
		case "gossip":
			kind, err = p.string()
		case "n":
			d.n, err = p.uint()
		case "ack":
			d.ack, err = p.uint()
		case "req":
			d.req, err = p.bool()
		case "sent":
			d.sent, err = p.uint()
		case "lostAck":
			d.lostAck, err = p.uint()
		case "full":
			d.full, err = p.bool()
		case "lost":
			d.answer = true
			d.lost, err = p.uint()
		case "have":
			d.have = make(map[string]spans)
			err = p.object(func(pub string) error {
				s, err := p.spans()
				d.have[pub] = s
				return err
			})
		default:
			err = p.skip(0)
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	if p.space(); p.i != len(p.b) {
		return nil, errJSON
	}
	if kind != "digest" {
		return nil, nil
	}
	return d, nil
}

func (p *digestParser) space() {
	for p.i < len(p.b) && (p.b[p.i] == ' ' || p.b[p.i] == '\t' || p.b[p.i] == '\n' || p.b[p.i] == '\r') {
		p.i++
	}
}

// next skips white space and reports whether the next byte is c, taking
// it if so.
func (p *digestParser) next(c byte) bool {
	p.space()
	if p.i < len(p.b) && p.b[p.i] == c {
		p.i++
		return true
	}
	return false
}

// object reads an object, calling member after each key with the parser
// at the value.
func (p *digestParser) object(member func(key string) error) error {
	if !p.next('{') {
		return errJSON
	}
	if p.next('}') {
		return nil
	}
	for {
		p.space()
		key, err := p.string()
		if err != nil {
			return err
		}
		if !p.next(':') {
			return errJSON
		}
		if err := member(key); err != nil {
			return err
		}
		if p.next('}') {
			return nil
		}
		if !p.next(',') {
			return errJSON
		}
	}
}

func (p *digestParser) string() (string, error) {
	if !p.next('"') {
		return "", errJSON
	}
	start, escaped := p.i-1, false
	for ; p.i < len(p.b); p.i++ {
		switch c := p.b[p.i]; {
		case c == '\\':
			escaped = true
			p.i++
		case c == '"':
			p.i++
			if !escaped {
				return string(p.b[start+1 : p.i-1]), nil
			}
			return jsjson.Unquote(p.b[start:p.i])
		case c < 0x20:
			return "", errJSON
		}
	}
	return "", errJSON
}

func (p *digestParser) uint() (uint64, error) {
	p.space()
	start := p.i
	var x uint64
	for p.i < len(p.b) && p.b[p.i] >= '0' && p.b[p.i] <= '9' {
		x = x*10 + uint64(p.b[p.i]-'0')
		p.i++
		if x > maxSeq {
			return 0, errNumber
		}
	}
	if p.i == start || p.b[start] == '0' && p.i-start > 1 {
		return 0, errNumber
	}
	if p.i < len(p.b) && (p.b[p.i] == '.' || p.b[p.i] == 'e' || p.b[p.i] == 'E') {
		return 0, errNumber
	}
	return x, nil
}

func (p *digestParser) bool() (bool, error) {
	p.space()
	switch {
	case bytes.HasPrefix(p.b[p.i:], []byte("true")):
		p.i += 4
		return true, nil
	case bytes.HasPrefix(p.b[p.i:], []byte("false")):
		p.i += 5
		return false, nil
	}
	return false, errJSON
}

// spans reads [lo,hi,lo,hi,...]: ascending, disjoint spans.
func (p *digestParser) spans() (spans, error) {
	if !p.next('[') {
		return nil, errJSON
	}
	var s spans
	if p.next(']') {
		return s, nil
	}
	prev := int64(-2)
	for {
		lo, err := p.uint()
		if err != nil {
			return nil, err
		}
		if !p.next(',') {
			return nil, errJSON
		}
		hi, err := p.uint()
		if err != nil {
			return nil, err
		}
		if lo > hi || int64(lo) <= prev || len(s) == maxDigestSpans {
			return nil, errors.New("spans must be ascending and disjoint, and few")
		}
		s = append(s, span{int64(lo), int64(hi)})
		prev = int64(hi)
		if p.next(']') {
			return s, nil
		}
		if !p.next(',') {
			return nil, errJSON
		}
	}
}

// skip skips one JSON value of a member this version does not know.
func (p *digestParser) skip(depth int) error {
	if depth > 64 {
		return errJSON
	}
	p.space()
	if p.i == len(p.b) {
		return errJSON
	}
	switch c := p.b[p.i]; {
	case c == '"':
		_, err := p.string()
		return err
	case c == '{':
		return p.object(func(string) error { return p.skip(depth + 1) })
	case c == '[':
		p.i++
		if p.next(']') {
			return nil
		}
		for {
			if err := p.skip(depth + 1); err != nil {
				return err
			}
			if p.next(']') {
				return nil
			}
			if !p.next(',') {
				return errJSON
			}
		}
	default: // a number or a literal
		start := p.i
		for p.i < len(p.b) && bytes.IndexByte([]byte("+-.0123456789eEtruefalsn"), p.b[p.i]) >= 0 {
			p.i++
		}
		if p.i == start {
			return errJSON
		}
		return nil
	}
}
