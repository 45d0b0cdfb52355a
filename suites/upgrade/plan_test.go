package upgrade

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/docker/docker/api/types/image"
	dockerclient "github.com/docker/docker/client"

	"github.com/k3snet/e2e/fixtures/profiles"
	"github.com/k3snet/e2e/framework/config"
	"github.com/k3snet/e2e/framework/profile"
)

// VersionLabel on a node image names the k3s version it runs, for images whose tag does not
// (scripts/lab/second-image.sh sets it on the lab's second image).
const VersionLabel = "io.k3snet.k3s.version"

// side is one end of the upgrade: a node image and the k3s version it runs.
type side struct {
	Name    string // FROM or TO
	Image   string
	ImageID string
	Version profile.Version // zero until known
	// VersionFrom says where Version came from, for messages.
	VersionFrom string
}

func (s side) String() string {
	if s.Version.IsZero() {
		return s.Image
	}
	return fmt.Sprintf("%s (k3s %s)", s.Image, s.Version)
}

// plan is what the environment asks for: a profile, FROM and TO.
type plan struct {
	Profile  *profile.Profile
	Exp      profile.Expectations
	From, To side
	Warnings []string // profile.Gates and the like: printed, reported, not fatal
}

// planFromEnv reads UPGRADE_PROFILE, UPGRADE_FROM[_IMAGE] and UPGRADE_TO[_IMAGE]. It returns
// nil and no error when no target is set: the suite then has nothing to do.
//
// A side is given as a k3s version (its image is rancher/k3s:<version as tag>), as an image
// (its version is read from the image), or as both: that image, which runs that version. FROM
// defaults to the run's K3S_IMAGE / K3S_VERSION, the images `make setup` prepared.
func planFromEnv(s config.Settings) (*plan, error) {
	to, err := sideFromEnv("TO", "", "")
	if err != nil || to.Image == "" {
		return nil, err
	}
	from, err := sideFromEnv("FROM", s.K3sImage, s.K3sVersion)
	if err != nil {
		return nil, err
	}
	if v := os.Getenv("UPGRADE_MAX_INTERRUPTION"); v != "" {
		if d, err := time.ParseDuration(v); err != nil || d <= 0 {
			return nil, fmt.Errorf("UPGRADE_MAX_INTERRUPTION=%q: want a positive duration such as 30s", v)
		}
	}
	name := os.Getenv("UPGRADE_PROFILE")
	if name == "" {
		name = "vxlan"
	}
	p, err := loadProfile(name)
	if err != nil {
		return nil, fmt.Errorf("UPGRADE_PROFILE=%s: %w", name, err)
	}
	if p.K3s.Image != "" && p.K3s.Image != from.Image {
		return nil, fmt.Errorf("profile %s pins k3s.image %s but the upgrade starts from %s; remove the pin (the upgrade chooses both images)", p.Name, p.K3s.Image, from.Image)
	}
	if p.K3s.Version != "" {
		pv, err := profile.ParseVersion(p.K3s.Version)
		if err != nil || (!from.Version.IsZero() && pv != from.Version) {
			return nil, fmt.Errorf("profile %s pins k3s.version %s but the upgrade starts from %s; remove the pin", p.Name, p.K3s.Version, from)
		}
	}
	pl := &plan{Profile: p, From: from, To: to}
	// With both versions known the gates apply now, before Docker is even asked.
	if !from.Version.IsZero() && !to.Version.IsZero() {
		if err := pl.gate(); err != nil {
			return nil, err
		}
	}
	return pl, nil
}

func sideFromEnv(name, defImage, defVersion string) (side, error) {
	s := side{Name: name, Image: os.Getenv("UPGRADE_" + name + "_IMAGE")}
	verEnv := "UPGRADE_" + name
	ver := os.Getenv(verEnv)
	if s.Image == "" && ver == "" {
		if defImage == "" {
			return s, nil
		}
		s.Image, ver, verEnv = defImage, defVersion, "K3S_VERSION"
	}
	if ver != "" {
		v, err := profile.ParseVersion(ver)
		if err != nil {
			return s, fmt.Errorf("%s: %w", verEnv, err)
		}
		s.Version, s.VersionFrom = v, verEnv
	}
	if s.Image == "" {
		if s.Version.Suffix == "" {
			return s, fmt.Errorf("%s=%s names no k3s release; write the full version (v%d.%d.%d+k3s1) or give UPGRADE_%s_IMAGE",
				verEnv, ver, s.Version.Major, s.Version.Minor, s.Version.Patch, name)
		}
		s.Image = "rancher/k3s:" + s.Version.ImageTag()
	}
	return s, nil
}

// loadProfile takes a profile name from the matrix (fixtures/profiles) or a .yaml file.
func loadProfile(name string) (*profile.Profile, error) {
	if strings.HasSuffix(name, ".yaml") || strings.HasSuffix(name, ".yml") {
		return profile.Load(name)
	}
	all, err := profile.LoadFS(profiles.FS)
	if err != nil {
		return nil, err
	}
	sel, err := profile.Select(all, name)
	if err != nil {
		return nil, err
	}
	if len(sel) != 1 {
		return nil, fmt.Errorf("want one profile, %q selects %d", name, len(sel))
	}
	return sel[0], nil
}

// gate applies k3s's version gates to the plan: what k3s cannot do is an error, what it
// does not support or what the profile loses is a warning.
func (pl *plan) gate() error {
	p, from, to := pl.Profile, pl.From.Version, pl.To.Version
	b := p.Network.FlannelBackend
	if p.Outcome.StartRefused {
		return fmt.Errorf("profile %s expects k3s to refuse to start: there is no running cluster to upgrade", p.Name)
	}
	if err := p.ValidateFor(from); err != nil {
		return fmt.Errorf("FROM %s: %w", pl.From, err)
	}
	pl.Exp = p.ExpectFor(from)
	if !pl.Exp.PodNetwork {
		return fmt.Errorf("profile %s runs no pod network (flannel-backend=%s): there is no pod traffic to keep during an upgrade", p.Name, b)
	}
	if pl.Exp.Nodes < 2 || !pl.Exp.CrossNode {
		return fmt.Errorf("profile %s has %d node(s): measuring pod traffic during an upgrade needs pods on at least two nodes", p.Name, pl.Exp.Nodes)
	}
	pl.Warnings = profile.Gates(p, from, to)
	if !profile.Supports(b, to) {
		return fmt.Errorf("upgrade %s → %s refused before anything starts: %s", from, to, strings.Join(pl.Warnings, "; "))
	}
	return nil
}

// resolve makes both images present locally (pulling what is missing), learns their IDs
// and any version not given, and applies the gates. Nothing is started.
func (pl *plan) resolve(ctx context.Context) error {
	dc, err := dockerclient.NewClientWithOpts(dockerclient.FromEnv, dockerclient.WithAPIVersionNegotiation())
	if err != nil {
		return err
	}
	defer dc.Close()
	for _, s := range []*side{&pl.From, &pl.To} {
		if err := s.resolve(ctx, dc); err != nil {
			return err
		}
	}
	if pl.From.ImageID == pl.To.ImageID {
		return fmt.Errorf("FROM %s and TO %s are the same image (%s): nothing would change; to rehearse the mechanics on one k3s build, derive a second image with scripts/lab/second-image.sh",
			pl.From.Image, pl.To.Image, shortID(pl.To.ImageID))
	}
	return pl.gate()
}

func (s *side) resolve(ctx context.Context, dc *dockerclient.Client) error {
	img, err := dc.ImageInspect(ctx, s.Image)
	if err != nil {
		// Not here (or not readable): Docker's own pull says which, and may fix it.
		if perr := pull(ctx, dc, s.Image); perr != nil {
			return fmt.Errorf("%s image %s: %v; pulling it: %w", s.Name, s.Image, err, perr)
		}
		if img, err = dc.ImageInspect(ctx, s.Image); err != nil {
			return fmt.Errorf("%s image %s: %w", s.Name, s.Image, err)
		}
	}
	s.ImageID = img.ID
	var label string
	if img.Config != nil {
		label = img.Config.Labels[VersionLabel]
	}
	if label != "" {
		v, err := profile.ParseVersion(label)
		if err != nil {
			return fmt.Errorf("%s image %s: label %s: %w", s.Name, s.Image, VersionLabel, err)
		}
		if !s.Version.IsZero() && v != s.Version {
			return fmt.Errorf("%s image %s is labelled k3s %s but %s says %s", s.Name, s.Image, v, s.VersionFrom, s.Version)
		}
		s.Version, s.VersionFrom = v, "label "+VersionLabel
	}
	if s.Version.IsZero() {
		if _, tag, ok := strings.Cut(lastPathElem(s.Image), ":"); ok {
			if v, err := profile.ParseVersion(tag); err == nil {
				s.Version, s.VersionFrom = v, "image tag"
			}
		}
	}
	if s.Version.IsZero() && s.Image == settings.K3sImage && settings.K3sVersion != "" {
		v, err := profile.ParseVersion(settings.K3sVersion)
		if err != nil {
			return fmt.Errorf("K3S_VERSION: %w", err)
		}
		s.Version, s.VersionFrom = v, "K3S_VERSION"
	}
	if s.Version.IsZero() {
		return fmt.Errorf("%s image %s does not say which k3s it runs (no version tag, no %s label): give UPGRADE_%s=<version> too", s.Name, s.Image, VersionLabel, s.Name)
	}
	return nil
}

func lastPathElem(ref string) string { return ref[strings.LastIndex(ref, "/")+1:] }

func shortID(id string) string {
	id = strings.TrimPrefix(id, "sha256:")
	if len(id) > 12 {
		id = id[:12]
	}
	return id
}

// pull fetches an image with Docker's own client (registry, credentials and mirrors as the
// engine is configured).
func pull(ctx context.Context, dc *dockerclient.Client, ref string) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	rc, err := dc.ImagePull(ctx, ref, image.PullOptions{})
	if err != nil {
		return err
	}
	defer rc.Close()
	// The stream carries the pull's progress and, at the end, its error.
	body, err := io.ReadAll(rc)
	if err != nil {
		return err
	}
	if i := strings.LastIndex(string(body), `"error"`); i >= 0 {
		return errors.New(strings.TrimSpace(string(body[i:])))
	}
	return nil
}
