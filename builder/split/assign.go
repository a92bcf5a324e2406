package split

import (
	"fmt"
	"io/fs"
	"sort"
	"strings"

	"github.com/kairos-io/kairos-firmware/builder/prune"
	"github.com/kairos-io/kairos-firmware/hwmatch/fwpath"
)

// Image kinds.
const (
	KindModule   = "module"    // one module's firmware
	KindShared   = "shared"    // files several modules declare
	KindGroup    = "group"     // a --group
	KindCatchAll = "catch-all" // files no module declares
)

// Group is a user-defined image: the firmware of its modules, and every file they share with
// modules outside it.
type Group struct {
	Name    string
	Modules []string
}

// ParseGroup reads --group NAME=MODULE,MODULE...
func ParseGroup(s string) (Group, error) {
	name, list, ok := strings.Cut(s, "=")
	if !ok || name == "" || list == "" {
		return Group{}, fmt.Errorf("--group %q: want NAME=MODULE[,MODULE...]", s)
	}
	g := Group{Name: name}
	for _, m := range strings.Split(list, ",") {
		if m == "" {
			return Group{}, fmt.Errorf("--group %q: an empty module name", s)
		}
		g.Modules = append(g.Modules, strings.ReplaceAll(m, "-", "_"))
	}
	return g, nil
}

// image is one extension image to write: what it holds, by tree path.
type image struct {
	name    string
	kind    string
	modules map[string]bool // modules whose declared firmware it holds
	entries map[string]bool // files, file links and directory links
}

// assignment is which image each tree entry goes to.
type assignment struct {
	images   map[string]*image
	modules  map[string]*module
	notes    []string
	warnings []string
	clashes  []string
}

// sortedImages lists the images by name.
func (a *assignment) sortedImages() []*image {
	list := make([]*image, 0, len(a.images))
	for _, img := range a.images {
		list = append(list, img)
	}
	sort.Slice(list, func(i, j int) bool { return list[i].name < list[j].name })
	return list
}

// assign decides the image of every entry of t (docs/split.md, "Membership"):
//   - a regular file goes to the image of the modules that declare it: one module's own image,
//     the group that holds them, the first --group among them, or the shared image of the set;
//     no module: the catch-all image;
//   - a link to a file goes with the file it leads to;
//   - a directory link goes into every image holding something under the directory it leads to.
func assign(t *tree, modules []*module, groups []Group, catchAll string) (*assignment, error) {
	a := &assignment{images: map[string]*image{}, modules: map[string]*module{}}
	for _, m := range modules {
		a.modules[m.name] = m
	}
	unitOf, groupRank, err := a.groupUnits(groups, catchAll)
	if err != nil {
		return nil, err
	}
	owners := declaredBy(t, modules)

	placed := map[string]*image{} // regular file -> its image
	type claim struct{ group, others string }
	claims := map[claim]int{}
	for _, rel := range t.sorted {
		if t.entries[rel].kind != regular {
			continue
		}
		own := owners[rel]
		var img *image
		switch units := unitsOf(own, unitOf); {
		case len(own) == 0:
			img = a.image(catchAll, KindCatchAll)
		case len(units) == 1:
			img = a.unitImage(units[0], groupRank)
		default:
			first := ""
			for _, u := range units {
				if _, isGroup := groupRank[u]; isGroup && (first == "" || groupRank[u] < groupRank[first]) {
					first = u
				}
			}
			if first == "" {
				img = a.image(sharedImage(own), KindShared)
				break
			}
			img = a.unitImage(first, groupRank)
			var others []string
			for _, m := range own {
				if unitOf[m] != first {
					others = append(others, m)
				}
			}
			claims[claim{first, strings.Join(others, ", ")}]++
		}
		img.entries[rel] = true
		for _, m := range own {
			img.modules[m] = true
		}
		placed[rel] = img
	}
	if len(a.clashes) > 0 {
		return nil, Problems(uniqueSorted(a.clashes))
	}
	for _, g := range groups {
		if a.images[g.Name] == nil {
			a.warnings = append(a.warnings, fmt.Sprintf("--group %s: its modules declare no file of the tree; no image", g.Name))
		}
	}
	for c, n := range claims {
		files, verb := fmt.Sprintf("%d files", n), "declare"
		if n == 1 {
			files = "1 file"
		}
		if !strings.Contains(c.others, ", ") {
			verb = "declares"
		}
		a.notes = append(a.notes, fmt.Sprintf("group %s holds %s that %s also %s (a --group takes the files its modules share)", c.group, files, c.others, verb))
	}

	var dirLinks []string
	for _, rel := range t.sorted {
		if t.entries[rel].kind != symlink {
			continue
		}
		c, err := t.resolve(rel)
		if err != nil {
			a.warnings = append(a.warnings, fmt.Sprintf("link %s -> %s left out: %v", rel, t.entries[rel].target, err))
			continue
		}
		if _, err := imageTarget(rel, t.entries[rel].target); err != nil {
			a.warnings = append(a.warnings, fmt.Sprintf("link %s -> %s left out: %v", rel, t.entries[rel].target, err))
			continue
		}
		if t.entries[c.final].kind == directory {
			dirLinks = append(dirLinks, rel)
			continue
		}
		placed[c.final].entries[rel] = true
	}
	a.placeDirLinks(t, dirLinks)
	sort.Strings(a.notes)
	sort.Strings(a.warnings)
	return a, nil
}

// groupUnits checks the groups and the catch-all name, and maps each grouped module to its
// group; groupRank is a group's position on the command line.
func (a *assignment) groupUnits(groups []Group, catchAll string) (map[string]string, map[string]int, error) {
	var problems Problems
	if err := checkName("--catch-all", catchAll); err != nil {
		problems = append(problems, err.Error())
	}
	unitOf := map[string]string{}
	groupRank := map[string]int{}
	for i, g := range groups {
		if err := checkName("--group", g.Name); err != nil {
			problems = append(problems, err.Error())
		}
		if _, dup := groupRank[g.Name]; dup || g.Name == catchAll {
			problems = append(problems, fmt.Sprintf("--group %s: the name is used twice", g.Name))
		}
		groupRank[g.Name] = i
		for _, m := range g.Modules {
			if a.modules[m] == nil {
				problems = append(problems, fmt.Sprintf("--group %s: the kernel has no module %q", g.Name, m))
			}
			if other, dup := unitOf[m]; dup {
				problems = append(problems, fmt.Sprintf("--group %s: module %s is already in group %s", g.Name, m, other))
			}
			unitOf[m] = g.Name
		}
	}
	if len(problems) > 0 {
		return nil, nil, problems
	}
	return unitOf, groupRank, nil
}

// declaredBy maps every regular file of t to the sorted modules that may request it: under its
// own name or a link's, plain or compressed, or through a wildcard name.
func declaredBy(t *tree, modules []*module) map[string][]string {
	owners := map[string]map[string]bool{}
	claim := func(rel, m string) {
		c, err := t.resolve(rel)
		if err != nil || t.entries[c.final].kind != regular {
			return
		}
		if owners[c.final] == nil {
			owners[c.final] = map[string]bool{}
		}
		owners[c.final][m] = true
	}
	for _, m := range modules {
		for _, name := range m.firmware {
			if !fs.ValidPath(name) || name == "." {
				continue // absolute or climbing out: the kernel refuses such names too
			}
			if prune.HasWildcard(name) {
				for _, rel := range t.sorted {
					if t.entries[rel].kind != directory && prune.MatchesFirmware(name, rel) {
						claim(rel, m.name)
					}
				}
				continue
			}
			for _, suffix := range fwpath.Suffixes {
				claim(name+suffix, m.name)
			}
		}
	}
	out := make(map[string][]string, len(owners))
	for rel, set := range owners {
		for m := range set {
			out[rel] = append(out[rel], m)
		}
		sort.Strings(out[rel])
	}
	return out
}

// unitsOf maps modules to their groups (or themselves), sorted and unique.
func unitsOf(modules []string, unitOf map[string]string) []string {
	var units []string
	for _, m := range modules {
		if g, ok := unitOf[m]; ok {
			units = append(units, g)
		} else {
			units = append(units, m)
		}
	}
	return uniqueSorted(units)
}

// unitImage is a group's image, or a module's own one.
func (a *assignment) unitImage(unit string, groupRank map[string]int) *image {
	if _, ok := groupRank[unit]; ok {
		return a.image(unit, KindGroup)
	}
	return a.image(moduleImage(unit), KindModule)
}

// image returns the image called name, made on first use. Two kinds of image under one name
// (--catch-all firmware-bnx2) is a clash that assign reports.
func (a *assignment) image(name, kind string) *image {
	img := a.images[name]
	if img == nil {
		img = &image{name: name, kind: kind, modules: map[string]bool{}, entries: map[string]bool{}}
		a.images[name] = img
	} else if img.kind != kind {
		a.clashes = append(a.clashes, fmt.Sprintf("two images are called %s: a %s image and a %s image; choose other names", name, img.kind, kind))
	}
	return img
}

// placeDirLinks puts each directory link (and the links it goes through) into every image that
// holds something under the directory it leads to, until nothing changes: a link costs nothing
// and each image needs it to resolve its own files, alone or merged. A directory link no image
// needs leads to no file and is left out.
func (a *assignment) placeDirLinks(t *tree, dirLinks []string) {
	used := map[string]bool{}
	for _, img := range a.sortedImages() {
		for changed := true; changed; {
			changed = false
			for _, link := range dirLinks {
				if img.entries[link] {
					continue
				}
				c, _ := t.resolve(link)
				for rel := range img.entries {
					if under(rel, c.final) {
						img.entries[link] = true
						for _, l := range c.links {
							img.entries[l] = true
						}
						used[link], changed = true, true
						break
					}
				}
			}
		}
	}
	for _, link := range dirLinks {
		if !used[link] {
			a.warnings = append(a.warnings, fmt.Sprintf("link %s -> %s left out: the directory it leads to holds no file", link, t.entries[link].target))
		}
	}
}
