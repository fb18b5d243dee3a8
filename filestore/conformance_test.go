package filestore_test

import (
	"testing"

	"github.com/hooksmith/webhook"
	"github.com/hooksmith/webhook/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) webhook.Store {
		s, _ := openStore(t)
		return s
	})
}
