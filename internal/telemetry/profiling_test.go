package telemetry_test

import (
	"testing"

	"github.com/segments/segments/internal/telemetry"
)

func TestLoopbackAddr(t *testing.T) {
	for addr, loopback := range map[string]bool{
		"127.0.0.1:6060": true,
		"127.1.2.3:6060": true,
		"[::1]:6060":     true,
		"localhost:6060": true,
		":6060":          false, // every interface
		"0.0.0.0:6060":   false,
		"[::]:6060":      false,
		"10.0.0.5:6060":  false,
		"example.com:80": false,
		"127.0.0.1":      false, // no port
	} {
		if err := telemetry.LoopbackAddr(addr); (err == nil) != loopback {
			t.Errorf("LoopbackAddr(%q) = %v, want loopback %v", addr, err, loopback)
		}
	}
}
