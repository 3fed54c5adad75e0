package testenv

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/build"
	"github.com/docker/docker/client"
	"github.com/docker/docker/pkg/jsonmessage"
)

// TestImage is the tag of the image built from ./testtool.
const TestImage = "mao-testtool:latest"

// Docker returns a client for the local Docker engine. Without an engine the
// test is skipped, or fails when MAO_REQUIRE_DOCKER=1.
func Docker(t testing.TB) *client.Client {
	t.Helper()
	c, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_, err = c.Ping(ctx)
	}
	if err != nil {
		if os.Getenv("MAO_REQUIRE_DOCKER") == "1" {
			t.Fatalf("MAO_REQUIRE_DOCKER=1 but no Docker engine answers: %v", err)
		}
		t.Skipf("no Docker engine (set MAO_REQUIRE_DOCKER=1 to fail instead): %v", err)
	}
	t.Log("mao-integration: docker")
	t.Cleanup(func() { c.Close() })
	return c
}

// BuildTestImage builds TestImage (FROM scratch with the static testtool
// binary) and returns a tag of it that names its content
// (mao-testtool:<hash>): TestImage itself may be retagged meanwhile by the
// tests of another checkout, whose testtool has other flags. Go's build
// cache and Docker's layer cache make a repeated build cheap.
func BuildTestImage(t testing.TB) string {
	t.Helper()
	tag, err := buildGoImage(Docker(t), TestImage, filepath.Join(RepoRoot(), "internal", "testenv", "testtool"))
	if err != nil {
		t.Fatalf("build %s: %v", TestImage, err)
	}
	return tag
}

// ExampleImage builds the image of the example tool in examples/NAME, as
// `make example-image` does, and returns its tag.
func ExampleImage(t testing.TB, name string) string {
	t.Helper()
	tag := "mao-examples/" + name + ":latest"
	if _, err := buildGoImage(Docker(t), tag, filepath.Join(RepoRoot(), "examples", name)); err != nil {
		t.Fatalf("build %s: %v", tag, err)
	}
	return tag
}

// RepoRoot is the root of the mao source tree.
func RepoRoot() string {
	_, self, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(self), "..", "..")
}

// buildGoImage builds tag FROM scratch with the static binary of the Go
// command in pkgDir as its entrypoint, and tags it also with a tag of the
// same repository that names the binary's content, which it returns.
func buildGoImage(c *client.Client, tag, pkgDir string) (string, error) {
	dir, err := os.MkdirTemp("", "mao-image-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(dir)
	name := filepath.Base(pkgDir)
	bin := filepath.Join(dir, name)
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", bin, ".")
	cmd.Dir = pkgDir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", &buildError{what: "go build " + name, out: out, err: err}
	}
	exe, err := os.ReadFile(bin)
	if err != nil {
		return "", err
	}
	repo, _, _ := strings.Cut(tag, ":")
	contentTag := fmt.Sprintf("%s:%x", repo, sha256.Sum256(exe))[:len(repo)+1+16]
	return contentTag, BuildImage(c, tag, map[string][]byte{
		"Dockerfile": []byte("FROM scratch\nCOPY " + name + " /" + name + "\nENTRYPOINT [\"/" + name + "\"]\n"),
		name:         exe,
	}, contentTag)
}

// BuildImage builds tag, and any more tags, from a build context given as
// file name → content.
func BuildImage(c *client.Client, tag string, files map[string][]byte, more ...string) error {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for name, data := range files {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o755, Size: int64(len(data))}); err != nil {
			return err
		}
		if _, err := tw.Write(data); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	resp, err := c.ImageBuild(ctx, &buf, build.ImageBuildOptions{Tags: append([]string{tag}, more...), Remove: true, ForceRemove: true})
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	return jsonmessage.DisplayJSONMessagesStream(resp.Body, io.Discard, 0, false, nil)
}

type buildError struct {
	what string
	out  []byte
	err  error
}

func (e *buildError) Error() string { return e.what + ": " + e.err.Error() + "\n" + string(e.out) }
