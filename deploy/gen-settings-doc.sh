#!/usr/bin/env bash
# Writes the settings tables of docs/operations.md from what the daemons print with
# --print-default-config (their settings tables are the single source of truth), between the
# markers
#   <!-- settings:lanrelayd begin ... -->   ...   <!-- settings:lanrelayd end -->
#   <!-- settings:proxyhelperd begin ... --> ...   <!-- settings:proxyhelperd end -->
#
#   deploy/gen-settings-doc.sh LANRELAYD PROXYHELPERD [DOC]           rewrite DOC in place
#   deploy/gen-settings-doc.sh --check LANRELAYD PROXYHELPERD [DOC]   exit 1 when DOC differs
#
# DOC defaults to docs/operations.md next to this script. The ctest `settings_doc` runs --check.
set -euo pipefail

check=false
if [[ "${1:-}" == "--check" ]]; then
  check=true
  shift
fi
if [[ $# -lt 2 ]]; then
  echo "usage: $0 [--check] LANRELAYD PROXYHELPERD [DOC]" >&2
  exit 2
fi
lanrelayd=$1
proxyhelperd=$2
doc=${3:-$(dirname "$0")/../docs/operations.md}

# One markdown table from a --print-default-config text on stdin.
table() {
  awk '
    function esc(t) { gsub(/\|/, "\\|", t); gsub(/</, "\\&lt;", t); return t }
    function row(name, value, text,   reload) {
      reload = "restart"
      if (text ~ / Reloads on SIGHUP\.$/) { reload = "reload"; sub(/ Reloads on SIGHUP\.$/, "", text) }
      if (inlist) { reload = list_reload }
      if (text ~ / \(required\)$/) { sub(/ \(required\)$/, "", text); value = "required" }
      else if (inlist) { value = "e.g. `" value "`" }
      else { value = "`" value "`" }
      printf "| `%s` | %s | %s | %s |\n", esc(name), esc(value), reload, esc(text)
    }
    BEGIN {
      print "| setting | default | on SIGHUP | meaning |"
      print "| --- | --- | --- | --- |"
    }
    /^\[[a-z0-9_]+\]$/ { section = substr($0, 2, length($0) - 2); inlist = 0; next }
    /^# \[\[[a-z_.]+\]\]$/ {
      list = substr($0, 3); inlist = 1
      list_reload = (doc ~ / Reloads on SIGHUP\.$/) ? "reload" : "restart"
      next
    }
    inlist && /^#   / { doc = substr($0, 5); next }
    inlist && /^# [a-z0-9_]+ = / {
      line = substr($0, 3); eq = index(line, " = ")
      row(list " " substr(line, 1, eq - 1), substr(line, eq + 3), doc); next
    }
    /^# / { doc = substr($0, 3); next }
    /^[a-z0-9_]+ = / {
      eq = index($0, " = ")
      row(section "." substr($0, 1, eq - 1), substr($0, eq + 3), doc); next
    }
  '
}

# DOC with the block between `name`'s markers replaced by `file`'s text.
splice() {
  local name=$1 file=$2
  awk -v name="$name" -v file="$file" '
    $0 ~ "^<!-- settings:" name " begin" { print; while ((getline line < file) > 0) print line; skip = 1; found = 1; next }
    $0 ~ "^<!-- settings:" name " end" { skip = 0 }
    !skip { print }
    END { if (!found) { print "gen-settings-doc: no <!-- settings:" name " begin --> marker" > "/dev/stderr"; exit 3 } }
  '
}

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$lanrelayd" --print-default-config | table > "$work/lanrelayd.md"
"$proxyhelperd" --print-default-config | table > "$work/proxyhelperd.md"
splice lanrelayd "$work/lanrelayd.md" < "$doc" | splice proxyhelperd "$work/proxyhelperd.md" > "$work/doc.md"

if $check; then
  if ! diff -u "$doc" "$work/doc.md"; then
    echo "" >&2
    echo "$doc: the settings tables differ from --print-default-config (above)." >&2
    echo "Regenerate them with: bash deploy/gen-settings-doc.sh $lanrelayd $proxyhelperd $doc" >&2
    exit 1
  fi
  echo "$doc: settings tables match --print-default-config"
else
  cp "$work/doc.md" "$doc"
fi
