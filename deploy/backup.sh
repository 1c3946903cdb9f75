#!/usr/bin/env bash
# Copies an Urna storage directory (storage.dir) so that a server started on the copy
# continues the same log: every receipt answered before the copy started stays valid.
# Safe while the server runs and takes ballots (docs/OPERATIONS.md, "Backup and restore").
#
#   deploy/backup.sh /var/lib/urna /backup/urna-$(date -u +%Y%m%dT%H%M%SZ)
#
# Why the order below: the writer appends to the last segment, fdatasyncs it, and only then
# signs and writes a checkpoint (docs/ARCHITECTURE.md, "The durability contract"). So the
# checkpoint is copied FIRST: every entry it covers is already in the segments, which only
# grow, and are copied after it. Copied the other way round, a checkpoint newer than the
# copied segments makes the copy refuse to start ("signed entries are missing"). A record
# cut by the copy at the end of the last segment is a torn tail that the next start cuts.
#
# Not copied: the roll and the config (they live outside storage.dir, never change during
# an election, and are published; back them up once) and log/LOCK (a lock, not data).
set -euo pipefail

if [ $# -ne 2 ]; then
  echo "usage: $0 <storage.dir> <destination (must not exist)>" >&2
  exit 2
fi
src=$1
dest=$2
if [ ! -d "$src/log" ] || [ ! -f "$src/log.key" ]; then
  echo "error: $src is not an Urna storage directory (no log/ or log.key)" >&2
  exit 1
fi
if [ -e "$dest" ]; then
  echo "error: $dest exists: back up into a new directory" >&2
  exit 1
fi

umask 077
mkdir -p "$dest/log"

# 1. The keys: without log.key no later checkpoint can be signed on the copy.
cp -p "$src/log.key" "$dest/"
for f in log.vkey final-checkpoint; do
  if [ -f "$src/$f" ]; then cp -p "$src/$f" "$dest/"; fi
done
if [ -d "$src/tls" ]; then cp -pR "$src/tls" "$dest/"; fi

# 2. The checkpoint, before any segment (see above).
if [ -f "$src/log/checkpoint.slots" ]; then
  cp -p "$src/log/checkpoint.slots" "$dest/log/"
fi

# 3. The segments, listed after the checkpoint was copied, in index order (20-digit names
#    sort as numbers). A segment created after the listing holds only entries the copied
#    checkpoint does not cover.
segments=()
while IFS= read -r name; do
  segments+=("$name")
done < <(find "$src/log" -maxdepth 1 -name '[0-9]*.seg' -printf '%f\n' | LC_ALL=C sort)
for name in "${segments[@]}"; do
  cp -p "$src/log/$name" "$dest/log/"
done

# 4. Make the copy durable before anyone relies on it.
sync -f "$dest/log" 2>/dev/null || sync
echo "copied ${#segments[@]} segment(s), the checkpoint and the keys of $src to $dest"
