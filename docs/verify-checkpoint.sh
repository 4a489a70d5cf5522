#!/usr/bin/env bash
# Verify a hub checkpoint (a C2SP signed note) with standard tools only: OpenSSL 3, coreutils, xxd.
# No wardcrf needed.
#
#   bash verify-checkpoint.sh CHECKPOINT-NOTE VKEY
#
# CHECKPOINT-NOTE: a signed checkpoint as the hub writes it (one entry of `wardcrf hub log`'s
# chain, a witness's state file, or the "checkpoint" of a receipt), saved to a file.
# VKEY: the hub's verifier key, as `wardcrf hub log` prints it: name+keyid+base64(0x01 || key).
#
# Exit 0 and "checkpoint OK: <origin> <size> <root>" when the note is a well-formed
# c2sp.org/tlog-checkpoint signed by that key; exit 1 and one line "REFUSED: ..." otherwise;
# exit 2 for bad usage. Checks (c2sp.org/signed-note, Ed25519):
#  1. the key id in the vkey is SHA-256(name || 0x0A || 0x01 || key)[:4];
#  2. the note is text, a blank line, and signature lines "— name base64(id || signature)";
#  3. a line by that name and key id exists, and its Ed25519 signature verifies over the text
#     (OpenSSL pkeyutl -rawin); other signatures (witnesses) are ignored, as the spec says;
#  4. the text is origin, tree size (decimal, no leading zeros) and a 32-byte base64 root,
#     and the origin is the key's name.
# Proofs (inclusion, consistency) need hashing a path: `wardcrf audit verify-log` does that,
# as does any RFC 6962 verifier (Go's github.com/transparency-dev/merkle).
set -euo pipefail
export LC_ALL=C

refuse() { echo "REFUSED: $*"; exit 1; }
[ $# -eq 2 ] || { echo "usage: bash verify-checkpoint.sh CHECKPOINT-NOTE VKEY" >&2; exit 2; }
note=$1 vkey=$2
[ -f "$note" ] || { echo "usage: $note is not a file" >&2; exit 2; }
[ "$(stat -c %s "$note")" -le 65536 ] || refuse "the note is larger than 64 KiB"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

name=${vkey%%+*}
rest=${vkey#*+}
keyid=${rest%%+*}
keyb64=${rest#*+}
[ -n "$name" ] && [ "$name" != "$vkey" ] && [ "$keyid" != "$rest" ] || refuse "the vkey is not name+keyid+key"
printf '%s' "$keyb64" | base64 -d > "$work/vkey.bin" 2>/dev/null || refuse "the vkey's key is not base64"
[ "$(stat -c %s "$work/vkey.bin")" -eq 33 ] || refuse "the vkey's key is not 33 bytes (0x01 || Ed25519 key)"
[ "$(head -c 1 "$work/vkey.bin" | xxd -p)" = "01" ] || refuse "the vkey is not an Ed25519 note key (type 0x01)"
tail -c 32 "$work/vkey.bin" > "$work/key.raw"
{ printf '%s\n' "$name"; cat "$work/vkey.bin"; } > "$work/idinput"
want=$(sha256sum "$work/idinput" | cut -c1-8)
[ "$want" = "$keyid" ] || refuse "the vkey's key id $keyid does not match its key ($want)"

# The note: no control characters but newline; text = everything before the last blank line.
if LC_ALL=C grep -q -P '[\x00-\x09\x0b-\x1f\x7f]' "$note"; then refuse "the note holds control characters"; fi
[ "$(tail -c 1 "$note" | xxd -p)" = "0a" ] || refuse "the note does not end with a newline"
blank=$(grep -n '^$' "$note" | tail -n 1 | cut -d: -f1 || true)
[ -n "$blank" ] || refuse "the note has no blank line before its signatures"
head -n $((blank - 1)) "$note" > "$work/text"
tail -n +$((blank + 1)) "$note" > "$work/sigs"
[ -s "$work/sigs" ] || refuse "the note has no signature lines"

dash=$(printf '\xe2\x80\x94')
found=""
while IFS= read -r line; do
  case "$line" in "$dash "*) ;; *) refuse "not a signature line: ${line:0:40}";; esac
  body=${line#"$dash "}
  signame=${body%% *}
  sig=${body#* }
  [ "$signame" = "$name" ] || continue
  printf '%s' "$sig" | base64 -d > "$work/sig.bin" 2>/dev/null || refuse "the signature of $name is not base64"
  [ "$(head -c 4 "$work/sig.bin" | xxd -p)" = "$keyid" ] || continue
  found=1
  break
done < "$work/sigs"
[ -n "$found" ] || refuse "no signature by $name with key id $keyid"
[ "$(stat -c %s "$work/sig.bin")" -eq 68 ] || refuse "the signature of $name is not 4 + 64 bytes"
tail -c 64 "$work/sig.bin" > "$work/sig.raw"
{ printf '302a300506032b6570032100' | xxd -r -p; cat "$work/key.raw"; } > "$work/key.der"
openssl pkey -pubin -inform DER -in "$work/key.der" -out "$work/key.pem" 2>/dev/null || refuse "OpenSSL cannot read the key"
openssl pkeyutl -verify -pubin -inkey "$work/key.pem" -rawin -in "$work/text" -sigfile "$work/sig.raw" >/dev/null 2>&1 \
  || refuse "the signature of $name does not verify over the checkpoint text"

mapfile -t lines < "$work/text"
[ "${#lines[@]}" -ge 3 ] || refuse "the checkpoint text is not origin, size and root"
[ "${lines[0]}" = "$name" ] || refuse "the origin ${lines[0]} is not the key's name $name"
[[ "${lines[1]}" =~ ^(0|[1-9][0-9]*)$ ]] || refuse "the tree size ${lines[1]:0:30} is not a decimal number"
printf '%s' "${lines[2]}" | base64 -d > "$work/root" 2>/dev/null || refuse "the root is not base64"
[ "$(stat -c %s "$work/root")" -eq 32 ] || refuse "the root is not 32 bytes"
echo "checkpoint OK: ${lines[0]} ${lines[1]} ${lines[2]}"
