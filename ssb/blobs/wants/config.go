package wants

import "time"

// Defaults of Config.
const (
	// DefaultMax is ssb-blobs' default blobs.max: 5 MiB.
	DefaultMax = 5 * 1024 * 1024
	// DefaultSympathy takes up a peer's own wants (-1, kept as -2) and no
	// further: we fetch what a peer wants itself, never what it merely
	// forwards, which bounds what one peer can make us fetch. JS's default is 3 (it also takes up -2 as -3).
	DefaultSympathy = 2
	// DefaultPushy is JS's pushy: a pushed blob is announced until this
	// many peers hold it.
	DefaultPushy = 3
	// DefaultMaxWantsPerPeer bounds the wants taken up from one peer.
	DefaultMaxWantsPerPeer = 1024
	// DefaultMaxWants bounds the wants taken up from all peers together.
	DefaultMaxWants = 16384
	// DefaultMaxHavesPerPeer bounds the haves remembered from one peer for
	// blobs nobody here wants yet.
	DefaultMaxHavesPerPeer = 1024
	// DefaultMaxMessageEntries bounds the entries read from one message. A
	// peer answers our whole want map in one message, so it exceeds
	// DefaultMaxWants.
	DefaultMaxMessageEntries = 20000
	// DefaultPeerBudget is how many bytes the blobs wanted by one peer
	// may take to fetch per hour (a bucket of this size, refilled at this
	// rate per hour).
	DefaultPeerBudget = 256 << 20
	// DefaultBudget is the same for the blobs wanted by all peers
	// together.
	DefaultBudget = 2 << 30
	// DefaultFetchTimeout is how long a fetch may go without progress
	// before it is abandoned and the blob fetched from another peer.
	DefaultFetchTimeout = 30 * time.Second
)

// Config sets the limits of a Core. A zero field takes its default.
//
// Disk and bandwidth spent for peers are bounded by the budgets: a blob
// fetched because peers wanted it (and we did not) is charged to each of
// them and to the total; a peer whose budget is spent has its new wants
// ignored (answered when the blob is here) until the budget refills.
//
// Memory is bounded by the limits: at most MaxWants wants from peers (plus
// the local wants and pushes, which only the owner makes), each remembering
// its origin peers; per peer at most MaxHavesPerPeer haves of blobs nobody
// wants, plus haves of wanted blobs; one fetch per wanted blob. Bandwidth:
// a blob is fetched only while wanted (by us or, with the default Sympathy,
// by a connected peer itself), only when announced smaller than Max, and
// never twice from a peer that failed it.
type Config struct {
	// Max is the largest blob fetched, in bytes. A have of Max bytes or
	// more is ignored (JS: `size < max`), and fetches ask for at most Max.
	// Default DefaultMax.
	Max int64

	// Sympathy is the largest want distance taken up: a peer's -n becomes
	// our want at -(n+1) when n+1 <= Sympathy, is forwarded to every peer
	// and fetched. 1 answers wants but takes up none; 2 (DefaultSympathy)
	// takes up a peer's own wants; 3 is JS's default.
	Sympathy int

	// Pushy is how many peers must hold a pushed blob before it is no
	// longer announced. Default DefaultPushy.
	Pushy int

	// MaxWantsPerPeer is how many wants one peer may have taken up at once
	// (blobs.createWants and blobs.has together). Beyond it its wants are
	// still answered when the blob is here but otherwise ignored and
	// counted (Stats.WantsDropped). Default DefaultMaxWantsPerPeer.
	MaxWantsPerPeer int

	// MaxWants is how many wants of peers are taken up in total; local
	// wants (Want, Push) are not limited. Default DefaultMaxWants.
	MaxWants int

	// MaxHavesPerPeer is how many haves of unwanted blobs are remembered
	// per peer, so that a later want fetches from it at once. Default
	// DefaultMaxHavesPerPeer.
	MaxHavesPerPeer int

	// MaxMessageEntries is how many entries of one message are read; the
	// rest are ignored and counted. Default DefaultMaxMessageEntries.
	MaxMessageEntries int

	// PeerBudget is how many bytes fetched for one peer's wants are
	// allowed per hour. Default DefaultPeerBudget.
	PeerBudget int64

	// Budget is how many bytes fetched for all peers' wants are allowed
	// per hour. Default DefaultBudget.
	Budget int64

	// FetchTimeout is how long a fetch may go without FetchProgress, as
	// seen by Tick, before it is cancelled and the blob is fetched from
	// another peer. Default DefaultFetchTimeout.
	FetchTimeout time.Duration
}

func (c Config) withDefaults() Config {
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	if c.Max <= 0 {
		c.Max = DefaultMax
	}
	def(&c.Sympathy, DefaultSympathy)
	def(&c.Pushy, DefaultPushy)
	def(&c.MaxWantsPerPeer, DefaultMaxWantsPerPeer)
	def(&c.MaxWants, DefaultMaxWants)
	def(&c.MaxHavesPerPeer, DefaultMaxHavesPerPeer)
	def(&c.MaxMessageEntries, DefaultMaxMessageEntries)
	if c.PeerBudget <= 0 {
		c.PeerBudget = DefaultPeerBudget
	}
	if c.Budget <= 0 {
		c.Budget = DefaultBudget
	}
	if c.FetchTimeout <= 0 {
		c.FetchTimeout = DefaultFetchTimeout
	}
	return c
}
