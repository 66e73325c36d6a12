package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"

	"github.com/scuttlego/scuttle/scuttlebutt"
	"github.com/scuttlego/scuttle/ssb/keys"
)

// errKeysInUse reports a key file another running sbkv holds.
var errKeysInUse = errors.New("sbkv: key file in use by another sbkv (two replicas must not share an id: give this one its own -keys FILE)")

// openIdentity returns the keypair of the secret file at path, creating
// the file (mode 0400, in a 0700 directory) if it does not exist, and
// locks it until release is called.
func openIdentity(path string) (kp *keys.KeyPair, release func(), err error) {
	kp, err = keys.Load(path)
	if errors.Is(err, fs.ErrNotExist) {
		if kp, err = keys.Generate(nil); err != nil {
			return nil, nil, fmt.Errorf("sbkv: %w", err)
		}
		err = keys.Save(path, kp)
		if errors.Is(err, fs.ErrExist) { // another sbkv made it first
			kp, err = keys.Load(path)
		}
	}
	if err != nil {
		return nil, nil, fmt.Errorf("sbkv: -keys: %w", err)
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, fmt.Errorf("sbkv: -keys: %w", err)
	}
	if err := lockFile(f); err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("%w: %s: %w", errKeysInUse, path, err)
	}
	return kp, func() { f.Close() }, nil
}

// loadTrust returns the key store of the -trust values: each an ed25519
// id, or a file of ids, either one per line ("#" starts a comment) or the
// JSON object of scuttlebutt.LoadKeys.
func loadTrust(values []string) (*scuttlebutt.Keys, error) {
	k := &scuttlebutt.Keys{}
	for _, v := range values {
		if pk, err := scuttlebutt.Ed25519PublicKey(v); err == nil {
			k.Add(v, pk)
			continue
		}
		data, err := os.ReadFile(v)
		if err != nil {
			return nil, fmt.Errorf("sbkv: -trust %q is neither an ed25519 id nor a readable file: %w", v, err)
		}
		if err := parseTrust(k, data); err != nil {
			return nil, fmt.Errorf("sbkv: -trust %s: %w", v, err)
		}
	}
	return k, nil
}

// parseTrust adds the ids of a trust file to k: ids one per line, or the
// JSON object of scuttlebutt.LoadKeys, each id mapped to itself or to its
// key ("<base64>.ed25519").
func parseTrust(k *scuttlebutt.Keys, data []byte) error {
	if t := bytes.TrimSpace(data); len(t) > 0 && t[0] == '{' {
		var m map[string]string
		if err := json.Unmarshal(data, &m); err != nil {
			return err
		}
		for id, key := range m {
			pk, err := scuttlebutt.Ed25519PublicKey(id)
			if err != nil {
				return err
			}
			if key != id && key != strings.TrimPrefix(id, "@") {
				return fmt.Errorf("the key of %s is %q, not its own", id, key)
			}
			k.Add(id, pk)
		}
		return nil
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line, _, _ := strings.Cut(sc.Text(), "#")
		id := strings.TrimSpace(line)
		if id == "" {
			continue
		}
		pk, err := scuttlebutt.Ed25519PublicKey(id)
		if err != nil {
			return fmt.Errorf("line %d: %w", n, err)
		}
		k.Add(id, pk)
	}
	return sc.Err()
}
