// FlattenLayer is header-only (three one-line methods); this file keeps the
// one-.h/.cc-pair-per-layer layout that src/CMakeLists.txt lists.
#include "layers/flatten.h"
