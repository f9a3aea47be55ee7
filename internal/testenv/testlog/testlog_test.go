package testlog

import (
	"encoding/json"
	"strings"
	"sync"
	"testing"
)

func TestBufferConcurrentWrites(t *testing.T) {
	var b Buffer
	logger := b.TextLogger()
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 100 {
				logger.Debug("marker")
				_ = b.String()
			}
		})
	}
	wg.Wait()
	if got := strings.Count(b.String(), "level=DEBUG msg=marker\n"); got != 800 {
		t.Errorf("%d whole debug lines, want 800:\n%s", got, b.String())
	}
	if b.Len() != len(b.String()) {
		t.Errorf("Len() = %d, want %d", b.Len(), len(b.String()))
	}
}

func TestJSONLogger(t *testing.T) {
	var b Buffer
	b.JSONLogger().Debug("marker", "k", "v")
	var rec map[string]any
	if err := json.Unmarshal([]byte(b.String()), &rec); err != nil {
		t.Fatalf("JSONLogger wrote %q: %v", b.String(), err)
	}
	if rec["level"] != "DEBUG" || rec["msg"] != "marker" || rec["k"] != "v" {
		t.Errorf("record = %v, want a debug record with msg marker and k=v", rec)
	}
}
