package toolspec

// Dataset is a registered git repository that tools may read as input and
// people may clone with maoctl.
type Dataset struct {
	Name        string `json:"name" yaml:"name"`
	URL         string `json:"url" yaml:"url"`
	Branch      string `json:"branch,omitempty" yaml:"branch,omitempty"` // empty: the remote's default branch
	Description string `json:"description,omitempty" yaml:"description,omitempty"`
	Owner       string `json:"owner,omitempty" yaml:"owner,omitempty"`
}

// Validate returns nil or a *ValidationError listing every problem.
func (d *Dataset) Validate() error {
	p := &problems{kind: "dataset"}
	p.check("name", CheckName(d.Name))
	p.check("url", checkGitURL(d.URL))
	if d.Branch != "" {
		p.check("branch", CheckBranch(d.Branch))
	}
	p.check("description", checkText(d.Description, maxLongText))
	p.check("owner", checkLine(d.Owner, maxShortText))
	return p.err()
}
