// Command deploycheck reads the project's container files with the parsers Docker itself uses,
// so the tests can check them without a Docker engine:
//
//	deploycheck dockerfile FILE   BuildKit's parser, instruction checks and default lint rules (docker build);
//	                              prints {"stages": [...], "args": [...], "warnings": [...]}
//	deploycheck compose FILE      compose-go's loader (docker compose config): interpolation from the
//	                              environment, schema validation, normalisation; prints the project
//
// A file either tool refuses makes deploycheck print the error and exit 1.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/linter"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
)

type stage struct {
	Name     string   `json:"name"`
	Base     string   `json:"base"`
	Commands []string `json:"commands"`
}

type arg struct {
	Name    string  `json:"name"`
	Default *string `json:"default"`
}

type dockerfile struct {
	Stages   []stage  `json:"stages"`
	Args     []arg    `json:"args"`
	Warnings []string `json:"warnings"`
}

func readDockerfile(path string) (*dockerfile, error) {
	file, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer file.Close()
	result, err := parser.Parse(file)
	if err != nil {
		return nil, err
	}
	out := &dockerfile{Stages: []stage{}, Args: []arg{}, Warnings: []string{}}
	for _, warning := range result.Warnings {
		out.Warnings = append(out.Warnings, warning.Short)
	}
	// The rules `docker build --check` applies by default (experimental ones off).
	lint := linter.New(&linter.Config{
		Warn: func(rule, description, url, message string, location []parser.Range) {
			out.Warnings = append(out.Warnings, fmt.Sprintf("%s: %s", rule, message))
		},
	})
	stages, metaArgs, err := instructions.Parse(result.AST, lint)
	if err != nil {
		return nil, err
	}
	for _, meta := range metaArgs {
		for _, pair := range meta.Args {
			out.Args = append(out.Args, arg{Name: pair.Key, Default: pair.Value})
		}
	}
	for _, parsed := range stages {
		commands := []string{}
		for _, command := range parsed.Commands {
			commands = append(commands, command.Name())
		}
		out.Stages = append(out.Stages, stage{Name: parsed.Name, Base: parsed.BaseName, Commands: commands})
	}
	return out, nil
}

func loadCompose(path string) ([]byte, error) {
	options, err := cli.NewProjectOptions(
		[]string{path},
		cli.WithWorkingDirectory(filepath.Dir(path)),
		cli.WithOsEnv,
		cli.WithProfiles([]string{"*"}),
	)
	if err != nil {
		return nil, err
	}
	project, err := options.LoadProject(context.Background())
	if err != nil {
		return nil, err
	}
	return project.MarshalJSON()
}

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: deploycheck dockerfile|compose FILE")
		os.Exit(2)
	}
	var output []byte
	var err error
	switch os.Args[1] {
	case "dockerfile":
		var parsed *dockerfile
		if parsed, err = readDockerfile(os.Args[2]); err == nil {
			output, err = json.Marshal(parsed)
		}
	case "compose":
		output, err = loadCompose(os.Args[2])
	default:
		err = fmt.Errorf("unknown kind %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Stdout.Write(append(output, '\n'))
}
