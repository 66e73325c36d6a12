package schedule

import "time"

// backoff is the wait after n failures (or flaps) in a row: MinBackoff ×
// 2^(n−1) (MinBackoff for n ≤ 1), at most MaxBackoff, plus a random part
// in [0, Jitter × that].
func (s *Scheduler) backoff(n int) time.Duration {
	d := s.cfg.MinBackoff << min(max(n-1, 0), 30)
	if d > s.cfg.MaxBackoff || d < s.cfg.MinBackoff {
		d = s.cfg.MaxBackoff
	}
	return d + time.Duration(s.rng.Int64N(int64(float64(d)*s.cfg.Jitter)+1))
}
