#!/bin/sh
# Every folder README lists the files in its folder (one line each): a file
# git tracks in a folder with a README.md must be named in it, as `name`
# (a header may ride on its source's line: `x.c/.h`, `x.c` / `.h`).  Also
# no README's list names a file that is gone from its folder (or from the
# subfolders it describes).  Runs from `make check`; fails listing what is
# missing.
set -u
top=$(cd "$(dirname "$0")/../.." && pwd)
cd "$top" || exit 1
command -v git >/dev/null 2>&1 && git rev-parse --git-dir >/dev/null 2>&1 || {
	echo "readme_files: not a git checkout; skipped"
	exit 77
}
missing=0 stale=0 checked=0
# Tracked and new (not ignored) files: a file added but not committed counts.
files=$(git ls-files --cached --others --exclude-standard | sort -u)
for readme in $(echo "$files" | grep -E '(^|/)README\.md$'); do
	dir=$(dirname "$readme")
	checked=$((checked + 1))
	for f in $(echo "$files" | awk -v d="$dir" '
	    { p = $0; if (d == ".") { if (p !~ /\//) print p }
	      else if (index(p, d "/") == 1) { r = substr(p, length(d) + 2);
	        if (r !~ /\//) print r } }'); do
		[ -e "$dir/$f" ] || continue	# deleted in the work tree
		case "$f" in README.md|.gitignore|.gitattributes) continue ;; esac
		re=$(printf '%s' "$f" | sed 's/[.[\*^$+?(){}|]/\\&/g')
		if grep -qE -- "(^|[^A-Za-z0-9_.-])$re([^A-Za-z0-9_-]|$)" "$readme"; then
			continue
		fi
		base=${f%.*}
		ext=${f##*.}
		# x.h (or x.hpp) named with its x.c: "x.c/.h", "x.c` / `.h"
		if [ "$ext" = h ] && grep -qE -- "$base\\.(c|m|mm|swift)\`? ?/ ?\`?\\.h" "$readme"; then
			continue
		fi
		echo "not in $readme: $f"
		missing=$((missing + 1))
	done
	# The file a list line or table row starts with must exist (in the
	# folder, or in a subfolder the README describes too).
	for f in $(sed -n -E 's,^(- |\| )`([A-Za-z0-9_.+-]+\.[A-Za-z0-9]+)(/\.h)?`.*,\2,p' \
	    "$readme"); do
		if [ ! -e "$dir/$f" ] && ! echo "$files" | grep -qE "^($dir/)?(.*/)?$(printf '%s' "$f" | sed 's/[.]/\\./g')\$"; then
			echo "$readme names $f, which is not in $dir/"
			stale=$((stale + 1))
		fi
	done
done
echo "readme_files: $checked READMEs, $missing files missing from them," \
    "$stale named but gone"
[ $missing -eq 0 ] && [ $stale -eq 0 ]
