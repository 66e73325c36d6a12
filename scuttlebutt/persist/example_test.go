package persist_test

import (
	"errors"
	"fmt"
	"io/fs"
	"log"
	"os"
	"path/filepath"

	"github.com/scuttlego/scuttle/scuttlebutt/model"
	"github.com/scuttlego/scuttle/scuttlebutt/persist"
)

// A durable Model: the id comes from the file when it exists, Open loads
// the file and appends every change to it, and Set returns once the
// change is on disk.
func ExampleOpen() {
	dir, err := os.MkdirTemp("", "persist-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "doc.log")

	for run := range 2 {
		id, err := persist.ReadID(path)
		if errors.Is(err, fs.ErrNotExist) {
			id = "example" // first run: model.New("") would pick a random id
		} else if err != nil {
			log.Fatal(err)
		}
		m := model.New(id)
		l, err := persist.Open(path, m.Replica, persist.Options{})
		if err != nil {
			log.Fatal(err)
		}
		if v, ok := m.Get("greeting"); ok {
			fmt.Printf("run %d: greeting is %s\n", run, v)
		}
		if err := m.Set("greeting", fmt.Sprint("hello ", run)); err != nil {
			log.Fatal(err) // the change is not durable
		}
		if err := l.Close(); err != nil {
			log.Fatal(err)
		}
	}
	// Output:
	// run 1: greeting is "hello 0"
}
