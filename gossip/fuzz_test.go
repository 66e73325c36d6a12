package gossip_test

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/scuttlego/scuttle/gossip"
)

// FuzzReceive: any line is handled without panicking; a delivered message
// is valid JSON, carries the line as Raw, verifies, and is not delivered
// twice.
func FuzzReceive(f *testing.F) {
	pub := mustKeys(f, "fuzz publisher")
	f.Add([]byte(jsVector))
	f.Add(jsEnvelope(f, pub, `{"a":[1,2,{"b":null}],"ü":"\u2028"}`, 7))
	f.Add([]byte(`{"gossip":"digest","n":1,"ack":0,"req":true,"sent":3,"lostAck":0,"have":{"x":[0,5]}}`))
	f.Add([]byte(`{"gossip":"digest","n":2,"ack":1,"lost":1,"have":{"a":[1,2,4,9]},"later":[{"x":"\u0000"}]}`))
	f.Add([]byte(`{"data":{"signature":1},"public":"","seq":0}`))
	goNode := newNode(f, "fuzz go", gossip.Config{})
	m, _ := goNode.Publish([]byte(`{"x":1.5e300}`))
	f.Add(m.Raw)
	kp := mustKeys(f, "fuzz receiver")
	f.Fuzz(func(t *testing.T, line []byte) {
		n := newNode(t, "", gossip.Config{Keys: kp})
		l := n.AddLink()
		m, err := n.Receive(l, line)
		if m == nil {
			return
		}
		if err != nil {
			t.Fatalf("delivered with an error: %v", err)
		}
		if !json.Valid(m.Data) || !bytes.Equal(m.Raw, bytes.TrimSuffix(line, []byte("\r"))) {
			t.Fatalf("message %+v from %q", m, line)
		}
		if again, _ := n.Receive(l, line); again != nil {
			t.Fatal("delivered twice")
		}
		// Whatever is accepted is forwarded as is.
		l2 := n.AddLink()
		n.Round()
		n.Round()
		found := false
		for _, out := range n.Output(l2) {
			found = found || out == string(m.Raw)
		}
		if !found {
			t.Fatal("not forwarded")
		}
	})
}

// FuzzStream: bytes cut anywhere are handled without panicking, and a
// valid envelope after them (on a fresh line) still arrives unless the
// stream was closed for garbage.
func FuzzStream(f *testing.F) {
	pub := mustKeys(f, "fuzz publisher")
	good := jsEnvelope(f, pub, `{"after":"fuzz"}`, 1)
	f.Add([]byte("garbage\r\n{\"data\":"), uint8(3))
	f.Add([]byte(jsVector+"\n"+jsVector), uint8(5))
	f.Add([]byte(strings.Repeat("x", 520)+"\n"), uint8(200)) // over MaxLine
	kp := mustKeys(f, "fuzz stream")
	f.Fuzz(func(t *testing.T, data []byte, chunk uint8) {
		var got []gossip.Message
		g, err := gossip.New(gossip.Options{
			Interval:  -1,
			Config:    gossip.Config{Keys: kp, MaxLine: 512, MaxMessage: 400},
			OnMessage: func(m gossip.Message) { got = append(got, m) },
		})
		if err != nil {
			t.Fatal(err)
		}
		defer g.Close()
		s := g.PeerStream()
		size := int(chunk)%64 + 1
		var werr error
		for len(data) > 0 && werr == nil {
			k := min(size, len(data))
			_, werr = s.Write(data[:k])
			data = data[k:]
		}
		if werr == nil {
			_, werr = s.Write(append([]byte("\n"), append(good, '\n')...))
		}
		if werr != nil {
			return
		}
		found := false
		for _, m := range got {
			found = found || string(m.Data) == `{"after":"fuzz"}`
		}
		if !found {
			t.Fatalf("the envelope after the fuzz did not arrive (stats %+v)", g.Stats())
		}
	})
}
