#!/usr/bin/env bash
# Fixtures for the blur and noise-suppression tests, made from Debian packages (nothing committed):
#  person.y4m  — a public-domain NASA portrait (astronaut Eileen Collins, shipped in Debian's
#                python3-skimage as skimage/data/astronaut.png), 640×480, as a fake camera;
#  noisy-speech.wav — espeak-ng speech with pauses, mixed with fluctuating noise, as a fake microphone.
# Usage: scripts/make-effects-fixtures.sh DIR   (installs espeak-ng, sox and ffmpeg when missing)
set -euo pipefail
out="${1:?output directory}"
mkdir -p "$out"
[ -s "$out/person.y4m" ] && [ -s "$out/noisy-speech.wav" ] && exit 0

need=()
command -v espeak-ng >/dev/null 2>&1 || need+=(espeak-ng)
command -v sox >/dev/null 2>&1 || need+=(sox)
command -v ffmpeg >/dev/null 2>&1 || need+=(ffmpeg)
SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
if [ ${#need[@]} -gt 0 ]; then
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
# Only the picture is needed, not the package's many dependencies: download and unpack it.
(cd "$work" && apt-get download python3-skimage >/dev/null 2>&1 || { $SUDO apt-get update -qq && apt-get download python3-skimage >/dev/null; })
dpkg-deb -x "$work"/python3-skimage_*.deb "$work/x"
photo="$(find "$work/x" -name astronaut.png | head -1)"
# 512×512 → pad to 4:3 with the backdrop's grey → 640×480; a few identical frames, looped by Chromium.
ffmpeg -loglevel error -y -loop 1 -i "$photo" -vf "pad=684:512:86:0:color=0xb8b0a8,scale=640:480,fps=30" \
  -frames:v 30 -pix_fmt yuv420p "$out/person.y4m"

# Speech: sentences separated by pauses.
for i in 1 2 3; do
  espeak-ng -s 150 -w "$work/s$i.wav" "The quick brown fox jumps over the lazy dog. Please send the report by Friday afternoon."
done
sox "$work/s1.wav" -r 48000 -c 1 "$work/a.wav" pad 0 1.5
sox "$work/s2.wav" -r 48000 -c 1 "$work/b.wav" pad 0 1.5
sox "$work/s3.wav" -r 48000 -c 1 "$work/c.wav" pad 0 1.5
sox "$work/a.wav" "$work/b.wav" "$work/c.wav" "$work/speech.wav" norm -3
len="$(soxi -D "$work/speech.wav")"
# Noise that a stationary suppressor struggles with: pink noise whose loudness wanders (tremolo), plus hum.
sox -n -r 48000 -c 1 "$work/noise.wav" synth "$len" pinknoise synth "$len" sine amod 0.7 60 tremolo 0.5 60 vol 0.25
sox -m -v 1 "$work/speech.wav" -v 1 "$work/noise.wav" -b 16 "$out/noisy-speech.wav" norm -3
