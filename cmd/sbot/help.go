package main

import (
	"fmt"
	"io"
	"strings"
)

// commandHelp is the help of each command: a summary for the list of
// commands, its usage line, and what it does.
var commandHelp = []struct{ name, summary, usage, doc string }{
	{"server", "run the server", "sbot server [OPTIONS]",
		"Run the server on the data directory (--path), creating the identity and the\n" +
			"store on first use, until interrupted. OPTIONS are the server options below;\n" +
			"they are also read from DIR/config (JSON, ssb-server's names), which they\n" +
			"override. A configuration error is reported before anything is\n" +
			"written."},
	{"whoami", "print the server's feed id", "sbot whoami", "Print the server's feed id."},
	{"publish", "publish a message: sbot publish --type post --text \"hello\"", "sbot publish --type TYPE [--KEY VALUE]...",
		"Publish a message whose content is the flags in order: --a.b nests, values\n" +
			"that are JSON (numbers, true, objects) are typed, others are strings.\n" +
			"  sbot publish --type post --text \"hello world\"\n" +
			"  sbot publish --type contact --contact @FEED --following\n" +
			"A flag given again makes an array. With recps (1 to 7 feeds) the message is\n" +
			"private: encrypted so that only they read it (include yourself to read it):\n" +
			"  sbot publish --type post --text hi --recps @ME --recps @FRIEND\n" +
			"  sbot get %MESSAGE --private     the plaintext of a message sent to you\n" +
			"  sbot private.unbox BOX          the plaintext of a content string\n" +
			"The other stream commands take --private too (sbot log --private)."},
	{"feed", "print messages by their claimed time (createFeedStream)", "sbot feed [STREAM OPTIONS]", "Print messages by their claimed time (createFeedStream)."},
	{"log", "print messages in the order received (createLogStream)", "sbot log [STREAM OPTIONS]", "Print messages in the order received (createLogStream)."},
	{"hist", "print one feed: sbot hist @FEED [--seq N]", "sbot hist @FEED [--seq N] [STREAM OPTIONS]", "Print one feed from sequence N (createHistoryStream)."},
	{"get", "print one message: sbot get %MESSAGE [--private]", "sbot get %MESSAGE [--private] [--meta]",
		"Print one message's value; --private decrypts a private message sent to you,\n" +
			"--meta prints its key, value and timestamp."},
	{"progress", "progress (--watch: a replication line that updates until caught up)", "sbot progress [--watch]",
		"Print ssb-server's progress (indexes, ooo); --watch prints a line of the\n" +
			"replication's progress (from status) that updates until caught up."},
	{"repair", "rebuild a damaged store from the messages that still validate", "sbot repair [--path DIR]",
		"Rebuild a damaged store from every message that still validates (signature,\n" +
			"chain), and report what was kept and what was lost per feed. The old file is\n" +
			"kept beside the new one. The server must be stopped: repair refuses to run\n" +
			"while the server of DIR answers on its socket."},
	{"export", "write the messages another peer lacks to a file (sneakernet)", "sbot export [--feeds @FEED[,@FEED...]] [--since CLOCK] > BUNDLE",
		"Write a bundle of messages for another peer: every feed the server holds (or\n" +
			"those of --feeds), after the vector clock CLOCK, which is JSON or a file\n" +
			"holding it: what `sbot getVectorClock` prints on the other peer. Carry the\n" +
			"file over and run sbot import there. A progress line goes to stderr."},
	{"import", "add a bundle's messages: sbot import BUNDLE", "sbot import BUNDLE",
		"Add the messages of a bundle made by sbot export. Each message is validated as\n" +
			"replication validates it (signature, sequence, previous, forks) and what is\n" +
			"here already is skipped, so importing twice changes nothing. A bundle that is\n" +
			"truncated, edited or forged stops the import at its first bad line, which is\n" +
			"named; the valid messages before it are kept. Prints the counts."},
	{"blobs.add", "add a blob: sbot blobs.add < FILE prints its id", "sbot blobs.add [FILE] (or < FILE)",
		"Add the file, or stdin, to the server's blobs (at most 5 MiB, config blobs.max)\n" +
			"and print its id, &HASH.sha256, once the server has stored it. The other\n" +
			"blobs methods are called as any method:\n" +
			"  sbot blobs.has ID      true or false\n" +
			"  sbot blobs.size ID     the size in bytes, or null\n" +
			"  sbot blobs.ls          the ids (--long: {id, size, ts}; --live: wait for more)\n" +
			"  sbot blobs.rm ID       remove it\n" +
			"  sbot blobs.want ID     fetch it from the peers; prints true once it is here\n" +
			"  sbot blobs.push ID     announce it to peers until three of them hold it"},
	{"blobs.get", "write a blob's bytes: sbot blobs.get ID > FILE", "sbot blobs.get ID",
		"Write the blob's bytes to stdout, as they are."},
	{"call", "call any method: sbot call METHOD [ARG...] (or just sbot METHOD [ARG...])", "sbot call METHOD [ARG...] [--KEY VALUE]...",
		"Call any method of the server (async, sync, source or sink, found in its\n" +
			"manifest). A sink is given stdin in binary chunks; binary answers are\n" +
			"written as they are, others as JSON.\n" +
			"Each ARG is JSON, or a string; the flags make one more argument, an object.\n" +
			"Any command that is not one of sbot's is such a call: sbot status,\n" +
			"sbot getLatest @FEED, sbot gossip.connect ADDRESS."},
	{"help", "this help, or a command's: sbot help COMMAND", "sbot help [COMMAND]", "Print this help, or a command's."},
}

const streamOptions = "--live, --limit N, --reverse, --old false, --keys false"

// printHelp writes the help about topic (a command), or the general help
// when topic is empty.
func printHelp(w io.Writer, topic string) {
	for _, c := range commandHelp {
		if c.name == topic {
			fmt.Fprintf(w, "usage: %s\n\n%s\n", c.usage, c.doc)
			if strings.Contains(c.usage, "STREAM OPTIONS") {
				fmt.Fprintf(w, "\nstream options: %s\n", streamOptions)
			}
			if c.name == "server" {
				fmt.Fprintln(w)
				printOptions(w)
			}
			return
		}
	}
	if topic != "" {
		fmt.Fprintf(w, "%q is not a command of sbot: it would be called as a method of the server\n(see sbot help call).\n\n", topic)
	}
	fmt.Fprint(w, "usage: sbot [OPTIONS] COMMAND [ARGS]\n\n"+
		"Secure Scuttlebutt server and its command-line client. Commands other than\n"+
		"server and repair reach the running server over its local socket, DIR/socket,\n"+
		"with the owner's rights, and print JSON.\n\ncommands:\n")
	for _, c := range commandHelp {
		fmt.Fprintf(w, "  %-9s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w)
	printOptions(w)
	fmt.Fprintf(w, "\nstream options (feed, log, hist, source methods): %s\n", streamOptions)
	fmt.Fprint(w, "\nexamples:\n"+
		"  sbot server --port 8009 --logging.level debug\n"+
		"  sbot --path /tmp/alice whoami\n"+
		"  sbot publish --type post --text \"hello world\"\n"+
		"  sbot hist @FEED --seq 2 --live\n"+
		"  sbot call latestSequence @FEED\n"+
		"  sbot blobs.add < photo.jpg; sbot blobs.get &HASH.sha256 > copy.jpg\n"+
		"  sbot repair --path /tmp/alice\n"+
		"  sbot getVectorClock > clock.json     (on the peer that lacks messages)\n"+
		"  sbot export --since clock.json > bundle; sbot import bundle\n"+
		"\n-h or --help anywhere on the line prints help and does nothing else.\n")
}

func printOptions(w io.Writer) {
	fmt.Fprintln(w, "server options (anywhere on the line; ssb-server's config names):")
	for _, o := range serverOptions {
		fmt.Fprintf(w, "  --%-24s %s\n", o.name+" "+o.arg, o.doc)
	}
}
