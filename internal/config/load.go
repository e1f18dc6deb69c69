package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// maxFileSize bounds a config file. Real ones are a few kilobytes.
const maxFileSize = 1 << 20

// Load reads and checks the config name from dir/<name>.yaml. The name is
// checked before any file is touched, and the file is opened through an
// os.Root on dir, so a symbolic link cannot lead outside dir.
//
// A config whose file any user may read (mode o+r) must not hold a secret:
// a password in a postgres connection string or an s3 secret_key.
func Load(dir, name string) (*Config, error) {
	if err := ValidName(name); err != nil {
		return nil, err
	}
	file := name + ".yaml"
	path := filepath.Join(dir, file)
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("config %s: %w; create the directory, or set %s to another", name, err, EnvDir)
	}
	defer root.Close()
	st, err := root.Stat(file)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, &kindError{fmt.Sprintf("config %s: %s does not exist; %s", name, path, listHint(dir, name)), ErrNotFound}
	case err != nil:
		if l, lerr := root.Lstat(file); lerr == nil && l.Mode()&fs.ModeSymlink != 0 {
			return nil, fmt.Errorf("config %s: %s is a symbolic link leading out of %s; put the file itself there", name, path, dir)
		}
		return nil, fmt.Errorf("config %s: cannot read %s: %w", name, path, pathless(err))
	case !st.Mode().IsRegular():
		return nil, fmt.Errorf("config %s: %s is not a regular file", name, path)
	}
	f, err := root.Open(file)
	if err != nil {
		return nil, fmt.Errorf("config %s: cannot read %s: %w", name, path, pathless(err))
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("config %s: cannot read %s: %w", name, path, pathless(err))
	}
	c, secrets, err := parse(path, data, name)
	if err != nil {
		return nil, err
	}
	if perm := st.Mode().Perm(); perm&0o004 != 0 && len(secrets) > 0 {
		s := secrets[0]
		return nil, &Error{File: path, Line: s.node.Line, Column: s.node.Column, Key: s.key,
			Msg: fmt.Sprintf("holds a secret, and any user can read this file (mode %04o); run chmod o-r %s, or %s", perm, path, s.fix)}
	}
	return c, nil
}

// Parse checks a config held in memory; path is only used in messages. It
// does everything Load does except what needs the file: the permission check
// for secrets. Secret key files and environment variables named by the
// config are read.
func Parse(path string, data []byte, name string) (*Config, error) {
	c, _, err := parse(path, data, name)
	return c, err
}

func parse(path string, data []byte, name string) (*Config, []secretSite, error) {
	if err := ValidName(name); err != nil {
		return nil, nil, err
	}
	if len(data) > maxFileSize {
		return nil, nil, &Error{File: path, Msg: fmt.Sprintf("the file is over %d bytes; a config file is a few kilobytes, so check that this is the right file", maxFileSize)}
	}
	doc, next, err := decodeYAML(data)
	if err != nil {
		return nil, nil, yamlError(path, err)
	}
	if doc == nil || len(doc.Content) == 0 || isNull(doc.Content[0]) {
		return nil, nil, &Error{File: path, Line: 1, Msg: "the file is empty; write at least repository: and disks:"}
	}
	if next != nil {
		return nil, nil, &Error{File: path, Line: next.Line, Column: next.Column,
			Msg: "a second YAML document starts here; a config file holds one, so remove the --- line and what follows"}
	}
	root := doc.Content[0]
	w := &walker{file: path, pos: map[string]*yaml.Node{"": root}}
	c := &Config{Name: name, Path: path}
	w.config(root, c)
	walkFailed := len(w.errs) > 0
	line := func(key string) string {
		_, n := w.locate(key)
		return "line " + strconv.Itoa(n.Line)
	}
	for _, p := range validate(c) {
		if p.cross && walkFailed || w.muted(p.key) {
			continue
		}
		key, n := w.locate(p.key)
		w.errs = append(w.errs, w.errorAt(n, key, p.text(line)))
	}
	if err := joinErrors(w.errs); err != nil {
		return nil, nil, err
	}
	return c, w.secrets, nil
}

// decodeYAML returns the first document of data and the start of a second
// one, if any. yaml.v3 is not trusted to never panic on hostile input.
func decodeYAML(data []byte) (doc, next *yaml.Node, err error) {
	defer func() {
		if r := recover(); r != nil {
			doc, next, err = nil, nil, fmt.Errorf("yaml: %v", r)
		}
	}()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var first yaml.Node
	if err := dec.Decode(&first); err == io.EOF {
		return nil, nil, nil
	} else if err != nil {
		return nil, nil, err
	}
	var second yaml.Node
	switch err := dec.Decode(&second); {
	case err == io.EOF:
		return &first, nil, nil
	case err != nil:
		return nil, nil, err
	}
	return &first, &second, nil
}

// yamlError turns "yaml: line 3: did not find expected key" into an Error
// on line 3.
func yamlError(path string, err error) error {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	line := 0
	if rest, ok := strings.CutPrefix(msg, "line "); ok {
		if num, m, ok := strings.Cut(rest, ": "); ok {
			if n, err := strconv.Atoi(num); err == nil {
				line, msg = n, m
			}
		}
	}
	msg = strings.Join(strings.Fields(msg), " ")
	return &Error{File: path, Line: line, Msg: "invalid YAML: " + msg + "; check the indentation and quoting"}
}
