#!/bin/bash
# usage (GPU machine, project root): bash .gpu/kit/run2.sh WHICH CR MODE
REPO=$(pwd)
export REPO PYTHONPATH=/tmp/site:$REPO/.gpu/src/server:$REPO/.gpu/src/operator:$REPO/.gpu/src/devtools
export MEDIA=/tmp/media VIDEOMODEL_CACHE=/tmp/vcache PYTHONUNBUFFERED=1 VLLM_USE_FLASHINFER_SAMPLER=0
mkdir -p $MEDIA
if [ "$3" = full ]; then
  [ -f $MEDIA/sq720_120s.mp4 ] || (python3 .gpu/kit/gen2.py sq >> $OUT/gen.log 2>&1 &)
  [ -f $MEDIA/distinct_40.mp4 ] || (python3 .gpu/kit/gen2.py hd >> $OUT/gen.log 2>&1 &)
fi
python3 .gpu/kit/bench2.py "$@" 2>&1 | tee -a $OUT/run.log
