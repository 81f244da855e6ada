#!/usr/bin/env bash
# Installs the Debian packages sir needs, when they are missing and we are root: the
# libraries MuJoCo needs for headless (EGL) rendering, the virtual X server and key typist
# (xvfb, xdotool) that the teleoperation tests drive robosuite's keyboard with, and FFmpeg,
# whose libraries torchcodec (lerobot's default video decoder, and sir's) loads.
# Otherwise says what is missing and carries on.
set -u
pkgs=(libegl1 libegl-mesa0 libgl1-mesa-dri xvfb xdotool ffmpeg)
command -v dpkg-query >/dev/null 2>&1 || exit 0
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "Installing system packages: ${missing[*]}"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
else
  echo "warning: headless rendering, the teleoperation tests and torchcodec need ${missing[*]}; install them with: sudo apt-get install ${missing[*]}" >&2
fi
exit 0
