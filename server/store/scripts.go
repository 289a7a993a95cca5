package store

import (
	"context"

	"github.com/redis/go-redis/v9"
)

// evalEach runs script n times in one pipeline, keysArgs giving each call's
// keys and arguments. A pipelined EVALSHA cannot fall back to EVAL by itself
// (see runScript): when Redis lacks the script the pipeline is sent again
// with EVAL. The scripts run this way are safe to run twice.
func (s *Store) evalEach(ctx context.Context, script *redis.Script, n int, keysArgs func(i int) ([]string, []any)) ([]*redis.Cmd, error) {
	run := func(eval func(redis.Pipeliner, []string, ...any) *redis.Cmd) ([]*redis.Cmd, error) {
		cmds := make([]*redis.Cmd, n)
		_, err := s.client.Pipelined(ctx, func(p redis.Pipeliner) error {
			for i := range cmds {
				keys, args := keysArgs(i)
				cmds[i] = eval(p, keys, args...)
			}
			return nil
		})
		return cmds, err
	}
	cmds, err := run(func(p redis.Pipeliner, keys []string, args ...any) *redis.Cmd {
		return script.EvalSha(ctx, p, keys, args...)
	})
	if err != nil && redis.HasErrorPrefix(err, "NOSCRIPT") {
		cmds, err = run(func(p redis.Pipeliner, keys []string, args ...any) *redis.Cmd {
			return script.Eval(ctx, p, keys, args...)
		})
	}
	return cmds, err
}
