#!/usr/bin/env bash
# Makes the media the bots send (src/bot): three VP8 layers of one moving test picture, as a
# simulcast encoder would make them, and a short Opus tone. Run once; the results are committed
# under test/fixtures/ so tests and benchmarks never need ffmpeg.
#
#   scripts/make-vp8-fixture.sh            (needs Debian's ffmpeg with libvpx and libopus:
#                                           apt-get update && apt-get install -y ffmpeg)
#
# Video: 30 fps, 4 s (120 frames) per layer, a key frame every 30 frames (frames 0, 30, 60, 90)
# in all three layers, no invisible (alt-ref) frames, so every IVF frame is one displayable
# frame and a sender can jump to any key frame. Audio: 20 ms Opus packets of a 440 Hz tone.
set -euo pipefail
cd "$(dirname "$0")/.."
out=test/fixtures
mkdir -p "$out"
command -v ffmpeg >/dev/null || { echo "ffmpeg is missing: apt-get update && apt-get install -y ffmpeg" >&2; exit 1; }

FPS=30
SECONDS_LONG=4
KEY_INTERVAL=30

layer() { # name width height bitrate
  ffmpeg -hide_banner -loglevel error -y \
    -f lavfi -i "testsrc2=size=1280x720:rate=${FPS}:duration=${SECONDS_LONG}" \
    -vf "scale=$2:$3:flags=bicubic,format=yuv420p" \
    -c:v libvpx -deadline realtime -cpu-used 8 -threads 1 \
    -b:v "$4" -minrate "$4" -maxrate "$4" -bufsize "$4" \
    -g "$KEY_INTERVAL" -keyint_min "$KEY_INTERVAL" -auto-alt-ref 0 -lag-in-frames 0 \
    -f ivf "$out/vp8-$1.ivf"
}
layer q 320 180 150k
layer h 640 360 500k
layer f 1280 720 1200k

ffmpeg -hide_banner -loglevel error -y \
  -f lavfi -i "sine=frequency=440:sample_rate=48000:duration=2" \
  -c:a libopus -b:a 32k -frame_duration 20 -application voip -ac 1 \
  "$out/opus-tone.opus"

ls -l "$out"/vp8-*.ivf "$out"/opus-tone.opus
