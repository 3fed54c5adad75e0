package testenv

import (
	"context"
	"testing"
)

func TestEtcdAndImage(t *testing.T) {
	c := EtcdClient(t)
	if _, err := c.Put(context.Background(), "/k", "v"); err != nil {
		t.Fatal(err)
	}
	tag := BuildTestImage(t)
	img, err := Docker(t).ImageInspect(context.Background(), tag)
	if err != nil {
		t.Fatal(err)
	}
	if img.Config == nil || len(img.Config.Entrypoint) != 1 || img.Config.Entrypoint[0] != "/testtool" {
		t.Fatalf("entrypoint: %+v", img.Config)
	}
}
