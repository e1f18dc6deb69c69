package blobtest_test

import (
	"testing"

	"github.com/holdfast-backup/holdfast/internal/blob"
	"github.com/holdfast-backup/holdfast/internal/blob/blobtest"
)

func TestMem(t *testing.T) {
	blobtest.Run(t, func(t *testing.T) blob.Store { return blobtest.NewMem() })
}

func TestFaultyWithoutFaults(t *testing.T) {
	blobtest.Run(t, func(t *testing.T) blob.Store { return blobtest.NewFaulty(blobtest.NewMem()) })
}
