package daemon

import (
	"errors"
	"io/fs"
	"os"

	"github.com/mao-research/mao/orchestrator/config"
)

// ConfigPath picks the config file: the explicit path if given, else
// $MAO_CONFIG, else ./config.ini when it exists, else "" (built-in defaults).
func ConfigPath(explicit string) string {
	if explicit != "" {
		return explicit
	}
	if env := os.Getenv("MAO_CONFIG"); env != "" {
		return env
	}
	if _, err := os.Stat("config.ini"); !errors.Is(err, fs.ErrNotExist) {
		return "config.ini"
	}
	return ""
}

// LoadConfig loads the config file ConfigPath picks.
func LoadConfig(explicit string) (config.Config, string, error) {
	path := ConfigPath(explicit)
	cfg, err := config.Load(path)
	return cfg, path, err
}
