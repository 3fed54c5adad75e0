package maoctl

import (
	"fmt"

	"github.com/urfave/cli/v2"
)

// The bash and zsh scripts ask maoctl itself for the candidates: the words
// typed so far followed by --generate-bash-completion print the next
// command's subcommands and flags, and the shell filters them by prefix.
const (
	bashCompletion = `# bash completion for maoctl; load with: source <(maoctl completion bash)
_maoctl_complete() {
	local cur=${COMP_WORDS[COMP_CWORD]}
	local IFS=$'\n'
	local words
	words=$("${COMP_WORDS[0]}" "${COMP_WORDS[@]:1:COMP_CWORD-1}" --generate-bash-completion 2>/dev/null)
	COMPREPLY=($(compgen -W "$words" -- "$cur"))
}
complete -o default -F _maoctl_complete maoctl
`
	zshCompletion = `#compdef maoctl
# zsh completion for maoctl; load with: source <(maoctl completion zsh)
_maoctl_complete() {
	local -a candidates
	candidates=("${(@f)$("${words[1]}" "${(@)words[2,CURRENT-1]}" --generate-bash-completion 2>/dev/null)}")
	compadd -a candidates
}
compdef _maoctl_complete maoctl
`
)

func (c *ctl) completionCommand() *cli.Command {
	return &cli.Command{
		Name:      "completion",
		Usage:     "print a shell completion script",
		ArgsUsage: "bash|zsh|fish",
		Action:    c.completion,
	}
}

func (c *ctl) completion(cCtx *cli.Context) error {
	a, err := args(cCtx, "bash|zsh|fish")
	if err != nil {
		return err
	}
	var script string
	switch a[0] {
	case "bash":
		script = bashCompletion
	case "zsh":
		script = zshCompletion
	case "fish":
		if script, err = cCtx.App.ToFishCompletion(); err != nil {
			return fmt.Errorf("fish completion: %w", err)
		}
	default:
		return usageErrorf("no completion for shell %q; want bash, zsh or fish", a[0])
	}
	_, err = fmt.Fprint(c.stdout, script)
	return err
}
