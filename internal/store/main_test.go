package store_test

import (
	"os"
	"testing"

	"github.com/segments/segments/internal/store/storetest"
)

func TestMain(m *testing.M) { os.Exit(storetest.Main(m)) }
