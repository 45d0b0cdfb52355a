#!/usr/bin/env bash
# image.sh [--check] NAME: builds the lab image defined by scripts/lab/images/NAME/, unless an
# image built from the same recipe already exists. With --check it builds nothing and exits 0
# when the image is up to date, 1 when it would be built.
#
# A recipe directory holds:
#   image.env   IMAGE_REFS="..." (every name the image gets, from versions.env) and
#               optionally DEPENDS="other recipes built first"
#   build.sh    optional; called as `build.sh CONTEXT_DIR` to put binaries and files into the
#               build context (it caches what it compiles under $LAB_CACHE/bin)
#   HASH_EXTRA_DIRS in image.env: repository directories whose content also goes into the
#               hash (the source of a program the image carries)
#   Dockerfile  optional; without it build.sh must create the image itself, named
#               $IMAGE_REF and labelled $LAB_LABEL (e.g. with docker import --change)
# The recipe hash (see recipe_of) is stored as an image label, so a changed recipe is rebuilt and an
# unchanged one costs one `docker image inspect`.
. "$(dirname "$0")/lib.sh"

check=0
if [ "${1:-}" = --check ]; then check=1; shift; fi
name=${1:?usage: image.sh [--check] NAME}
dir="$LAB_DIR/images/$name"
[ -d "$dir" ] || die "no recipe scripts/lab/images/$name"

# recipe_of NAME: the hash of what defines an image: its recipe files, the pinned versions
# they use (only those, so pinning something new rebuilds nothing else), the repository
# directories named in HASH_EXTRA_DIRS and, recursively, the recipes it depends on.
recipe_of() {
	local d="$LAB_DIR/images/$1" deps extra var
	# shellcheck disable=SC1091
	deps=$(DEPENDS=""; . "$d/image.env"; echo "$DEPENDS")
	# shellcheck disable=SC1091
	extra=$(HASH_EXTRA_DIRS=""; . "$d/image.env"; echo "$HASH_EXTRA_DIRS")
	local -a files
	# Sorted as a whole, bytewise: find lists a directory in the file system's own order,
	# which differs from one file system to another.
	mapfile -t files < <({ find "$d" -type f; for x in $extra; do find "$REPO_DIR/$x" -type f; done; } | LC_ALL=C sort)
	# The variables the files reference ($VAR or ${VAR}), then their lines of versions.env in
	# that file's order: one grep for all variables (one per variable cost seconds).
	local used
	# shellcheck disable=SC2016 # a regular expression for a literal $
	used=" $(grep -ohE '\$\{?[A-Za-z0-9_]+' "${files[@]}" | tr -d '${' | sort -u | tr '\n' ' ') "
	{
		while IFS= read -r line; do
			var=${line%%=*}
			case "$used" in *" $var "*) echo "$line" ;; esac
		done < <(grep -E '^[A-Z0-9_]*=' "$LAB_DIR/versions.env")
		cat "${files[@]}"
		for x in $deps; do recipe_of "$x"; done
	} | sha256sum | cut -c1-12
}

IMAGE_REFS=""; DEPENDS=""
# shellcheck disable=SC1091
. "$dir/image.env"
[ -n "$IMAGE_REFS" ] || die "$name: image.env sets no IMAGE_REFS"
hash=$(recipe_of "$name")
fresh=1
for ref in $IMAGE_REFS; do
	[ "$(image_label "$ref" io.k3snet.lab.recipe)" = "$hash" ] || fresh=0
done
if [ "$check" = 1 ]; then
	[ "$fresh" = 1 ]; exit
fi
if [ "$fresh" = 1 ]; then
	log "$name: cached ($IMAGE_REFS)"
	exit 0
fi
# The hash covers the dependencies' recipes, so only a stale image needs them checked.
for d in $DEPENDS; do "$LAB_DIR/image.sh" "$d"; done

export IMAGE_REF=${IMAGE_REFS%% *}
export LAB_LABEL="io.k3snet.lab.recipe=$hash"
build_image() {
	local ctx="$LAB_CACHE/work/ctx-$name"
	rm -rf "$ctx"; mkdir -p "$ctx"
	# `step` runs this inside `if`, where set -e does not apply: check each command.
	if [ -x "$dir/build.sh" ]; then "$dir/build.sh" "$ctx" || die "$name: build.sh failed"; fi
	if [ -f "$dir/Dockerfile" ]; then
		cp "$dir/Dockerfile" "$ctx/Dockerfile"
		docker build --label "$LAB_LABEL" --label io.k3snet.lab=true -t "$IMAGE_REF" "$ctx" || die "$name: docker build failed"
	fi
	have_image "$IMAGE_REF" || die "$name: recipe did not produce $IMAGE_REF"
	for ref in ${IMAGE_REFS#* }; do
		[ "$ref" = "$IMAGE_REF" ] || docker tag "$IMAGE_REF" "$ref" || die "$name: docker tag $ref failed"
	done
	rm -rf "$ctx"
}
step "image-$name" build_image
