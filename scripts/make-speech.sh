#!/usr/bin/env bash
# Regenerates testdata/speech/speech_8k.wav, the project's speech sample (tests, loadgen, demo):
# espeak-ng reads a passage with pauses between sentences (so talkspurts and DTX happen), sox
# converts it to 8 kHz mono 16-bit. Needs: apt-get install espeak-ng sox.
set -euo pipefail
cd "$(dirname "$0")/.."
out=testdata/speech/speech_8k.wav
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
i=0
while IFS= read -r line; do
  [ -n "$line" ] || continue
  voice=$([ $((i % 2)) -eq 0 ] && echo en-us || echo en-gb)
  espeak-ng -v "$voice" -s 150 -w "$tmp/s$i.wav" "$line"
  sox -n -r 22050 -c 1 "$tmp/p$i.wav" trim 0 0.7
  i=$((i + 1))
done <<'TEXT'
The relay tier forwards most calls in the kernel, and only a few need transcoding.
Please hold while we connect your call to the next available agent.
Seven, three, nine, one, five, two, eight, zero, four, six.
A gateway on the public network speaks G seven eleven at eight kilohertz.
The mobile client speaks Opus, and the clock of its stream runs at forty eight kilohertz.
When the line goes quiet, comfort noise keeps the far end from thinking the call dropped.
Thank you for calling. Goodbye.
TEXT
parts=()
for j in $(seq 0 $((i - 1))); do parts+=("$tmp/s$j.wav" "$tmp/p$j.wav"); done
sox "${parts[@]}" -r 8000 -c 1 -b 16 "$out" norm -3
soxi "$out"
