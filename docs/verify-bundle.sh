#!/usr/bin/env bash
# Verify a wardcrf sync bundle with Debian's tools only: age, minisign, GNU tar,
# coreutils (sha256sum, stat, od, sort, ...), grep and sed. No wardcrf needed.
#
#   bash verify-bundle.sh BUNDLE.tar.age DEVICE.card AGE-IDENTITY-FILE
#
# Exit 0 and "bundle OK: ..." when every check passes; exit 1 and one line
# "REFUSED: <what is wrong>" at the first failure; exit 2 for bad usage.
# Nothing is extracted until the archive has passed every check that can be
# made from its listing, so a hostile bundle never writes links, absolute
# paths, huge sparse files or an inflated archive to your disk.
#
# Checks, in order (docs/sync.md, "For auditors"):
#  1. outer signature: prehashed (minisign -H), by the device's key, over the exact file;
#  2. age decryption with your identity (you are a recipient);
#  3. the archive is an uncompressed POSIX tar (ustar magic; no gzip, bzip2, xz or zstd:
#     GNU tar would inflate those on its own);
#  4. every member a regular file (no links, devices, fifos, directories), no absolute
#     path, no '..', a whitelisted flat name, no duplicates; the sizes the members declare
#     add up to no more than the archive holds (an 8 GiB sparse member does not fit);
#  5. inner signature (SHA256SUMS.minisig) by the same key; its trusted comment names this
#     manifest's SHA-256; SHA256SUMS lists exactly the members present, each intact;
#  6. photos and logger files: each named by its SHA-256, listed in the manifest, and cited
#     by an event (an extra photo, even listed and signed, is refused);
#  7. the event chain: line 1 starts with chain_first_prev, each line's prev is the SHA-256
#     of the line before, seqs consecutive from events.first, the last hash is chain_last.
set -euo pipefail
export LC_ALL=C

refuse() { echo "REFUSED: $*"; exit 1; }
[ $# -eq 3 ] || { echo "usage: $0 BUNDLE.tar.age DEVICE.card AGE-IDENTITY-FILE" >&2; exit 2; }
BUNDLE=$1 CARD=$2 IDENTITY=$3
for f in "$BUNDLE" "$BUNDLE.minisig" "$CARD" "$IDENTITY"; do
  [ -r "$f" ] || { echo "cannot read $f" >&2; exit 2; }
done
PUB=$(sed -n 's/^minisign-public-key: //p' "$CARD")
[ -n "$PUB" ] || { echo "$CARD has no minisign-public-key line" >&2; exit 2; }

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

# 1. origin, before anything is decrypted or parsed
minisign -V -H -q -P "$PUB" -m "$BUNDLE" -x "$BUNDLE.minisig" >/dev/null 2>&1 ||
  refuse "outer signature is not a good prehashed signature by this device's key"

# 2. decrypt (age never makes more bytes than it is given)
age -d -i "$IDENTITY" -o "$WORK/bundle.tar" "$BUNDLE" 2>/dev/null ||
  refuse "cannot decrypt with this identity (not a recipient, or a damaged file)"
TAR="$WORK/bundle.tar"
ARCHIVE_SIZE=$(stat -c %s "$TAR")

# 3. an uncompressed ustar archive, nothing for tar to inflate
MAGIC=$(od -An -tx1 -N6 "$TAR" | tr -d ' \n')
case "$MAGIC" in
  1f8b*) refuse "the archive is gzip-compressed (a bundle is an uncompressed tar)" ;;
  425a68*) refuse "the archive is bzip2-compressed (a bundle is an uncompressed tar)" ;;
  fd377a585a00) refuse "the archive is xz-compressed (a bundle is an uncompressed tar)" ;;
  28b52ffd*) refuse "the archive is zstd-compressed (a bundle is an uncompressed tar)" ;;
esac
USTAR=$(od -An -c -j257 -N6 "$TAR" | tr -d ' \n')
[ "$USTAR" = 'ustar\0' ] || refuse "the archive is not a POSIX ustar tar file"

# 4. members, from the listing alone
tar --list --verbose --numeric-owner --file "$TAR" >"$WORK/listing" 2>"$WORK/listing.err" ||
  refuse "tar cannot list the archive (truncated or damaged)"
tar --list --file "$TAR" >"$WORK/names" 2>/dev/null
[ "$(wc -l <"$WORK/listing")" = "$(wc -l <"$WORK/names")" ] || refuse "a member name spans lines"
NAME_RE='^(manifest\.json|events\.jsonl|SHA256SUMS|SHA256SUMS\.minisig|photos/[0-9a-f]{64}\.(jpg|png|heic)|evidence/[0-9a-f]{64}\.[a-z0-9]{1,8})$'
DECLARED=0
while IFS= read -r entry <&3 && IFS= read -r name <&4; do
  type=${entry:0:1}
  case "$type" in
    -) ;;
    h) refuse "member $name is a hard link; only regular files are allowed" ;;
    l) refuse "member $name is a symbolic link; only regular files are allowed" ;;
    *) refuse "member $name is not a regular file (type '$type')" ;;
  esac
  case "$name" in
    /*) refuse "member $name has an absolute path" ;;
    ../*|*/../*|*/..|..) refuse "member $name climbs out with '..'" ;;
  esac
  printf '%s\n' "$name" | grep -Eq "$NAME_RE" || refuse "member $name is not an allowed bundle member"
  size=$(printf '%s\n' "$entry" | awk '{print $3}')
  case "$size" in ''|*[!0-9]*) refuse "member $name has no readable size" ;; esac
  DECLARED=$((DECLARED + size))
  [ "$DECLARED" -le "$ARCHIVE_SIZE" ] ||
    refuse "members declare $DECLARED bytes, more than the archive's $ARCHIVE_SIZE (a sparse or forged member)"
done 3<"$WORK/listing" 4<"$WORK/names"
# Anything else tar had to say about the listing (it strips a leading '/', for one).
if [ -s "$WORK/listing.err" ]; then refuse "tar warns about the archive: $(head -1 "$WORK/listing.err")"; fi
DUP=$(sort "$WORK/names" | uniq -d | head -1)
[ -z "$DUP" ] || refuse "member $DUP appears twice"
for need in manifest.json events.jsonl SHA256SUMS SHA256SUMS.minisig; do
  grep -qxF "$need" "$WORK/names" || refuse "the archive lacks $need"
done

# Only now: extract (regular files with whitelisted names, sizes checked).
mkdir "$WORK/x"
tar --extract --file "$TAR" --directory "$WORK/x" --no-same-owner --no-same-permissions 2>/dev/null ||
  refuse "tar cannot extract the archive"
cd "$WORK/x"

# 5. inner signature, its trusted comment, every member intact and listed
COMMENT=$(minisign -V -H -Q -P "$PUB" -m SHA256SUMS -x SHA256SUMS.minisig 2>/dev/null) ||
  refuse "SHA256SUMS.minisig is not a good prehashed signature by this device's key"
MANIFEST_SHA=$(sha256sum manifest.json | cut -d' ' -f1)
case "$COMMENT" in
  "wardbundle/1 "*" manifest=$MANIFEST_SHA") ;;
  *) refuse "the signed trusted comment does not name this manifest (manifest=$MANIFEST_SHA)" ;;
esac
sha256sum --check --strict --quiet SHA256SUMS >/dev/null 2>&1 || refuse "a member does not match SHA256SUMS (changed)"
grep -Ev '^(SHA256SUMS|SHA256SUMS\.minisig)$' "$WORK/names" | sort >"$WORK/present"
sed 's/^[0-9a-f]\{64\}  //' SHA256SUMS | sort >"$WORK/listed"
cmp -s "$WORK/present" "$WORK/listed" ||
  refuse "SHA256SUMS does not list exactly the members present: $(comm -3 "$WORK/present" "$WORK/listed" | head -1 | tr -d '\t')"

# The manifest is canonical JSON (sorted keys, no spaces): fields are read with sed.
field() { sed -n "s/.*\"$1\":\"\([^\"]*\)\".*/\1/p" manifest.json; }
FIRST_PREV=$(field chain_first_prev)
LAST=$(field chain_last)
FIRST_SEQ=$(sed -n 's/.*"events":{"count":[0-9]*,"first":\([0-9]*\),.*/\1/p' manifest.json)
[ -n "$FIRST_PREV" ] && [ -n "$LAST" ] && [ -n "$FIRST_SEQ" ] || refuse "manifest.json lacks the chain fields"

# 6. photos and logger files: named by their SHA-256, in the manifest, cited by an event
LISTED=$(sed -n 's/.*"photos":\[\([^]]*\)\].*/\1/p' manifest.json | tr -d '"' | tr ',' '\n' | sed '/^$/d' | sort)
CARRIED=$(grep -E '^photos/' "$WORK/present" | sed 's|^photos/\([0-9a-f]*\)\..*|\1|' | sort || true)
[ "$LISTED" = "$CARRIED" ] || refuse "photo members differ from the manifest's photo list"
for member in $(grep -E '^(photos|evidence)/' "$WORK/present" || true); do
  digest=${member#*/}; digest=${digest%%.*}
  [ "$(sha256sum "$member" | cut -d' ' -f1)" = "$digest" ] || refuse "$member is not named by the SHA-256 of its bytes"
  grep -q "$digest" events.jsonl || refuse "$member is not cited by any event in the bundle"
done

# 7. the chain
PREV=$FIRST_PREV SEQ=$FIRST_SEQ N=0
while IFS= read -r line || [ -n "$line" ]; do
  N=$((N + 1))
  case "$line" in
    "{\"prev\":\"$PREV\","*) ;;
    *) refuse "chain broken at event line $N: prev is not the previous event's hash" ;;
  esac
  case "$line" in
    *"\"seq\":$SEQ,"*) ;;
    *) refuse "event line $N does not carry seq $SEQ" ;;
  esac
  PREV=$(printf '%s' "$line" | sha256sum | cut -d' ' -f1)
  SEQ=$((SEQ + 1))
done <events.jsonl
[ "$PREV" = "$LAST" ] || refuse "the last event's hash is not chain_last"

echo "bundle OK: $N events, seq $FIRST_SEQ-$((SEQ - 1)), chain intact; signed comment: $COMMENT"
