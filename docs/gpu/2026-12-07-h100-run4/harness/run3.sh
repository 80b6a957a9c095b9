#!/bin/bash
# usage (GPU machine, project root): bash .gpu/kit/run3.sh WHICH CR MODE
REPO=$(pwd)
export REPO PYTHONPATH=/tmp/site:$REPO/server:$REPO/operator:$REPO/devtools
export MEDIA=/tmp/media VIDEOMODEL_CACHE=/tmp/vcache PYTHONUNBUFFERED=1 VLLM_USE_FLASHINFER_SAMPLER=0
mkdir -p $MEDIA
if [ "$3" = full ] || [ "$3" = gen ]; then
  [ -f $MEDIA/sq720_120s.mp4 ] || [ -f /tmp/gen-sq.started ] || (touch /tmp/gen-sq.started; setsid python3 .gpu/kit/gen2.py sq >> /tmp/gen.log 2>&1 &)
  [ -f $MEDIA/distinct_40.mp4 ] || [ -f /tmp/gen-hd.started ] || (touch /tmp/gen-hd.started; setsid python3 .gpu/kit/gen2.py hd >> /tmp/gen.log 2>&1 &)
fi
[ "$3" = gen ] && exit 0
python3 .gpu/kit/bench3.py "$@" 2>&1 | tee -a $OUT/run.log
cp /tmp/gen.log $OUT/ 2>/dev/null
true
