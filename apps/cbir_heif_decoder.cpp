// The isolated HEIC/AVIF decoder: cbir runs it as a child process with the file on its standard input
// and reads the pixels from its standard output (lib/image/heif_isolation.h says why).
#include "image/heif_isolation.h"

int main() { return cbir::run_heif_decoder(0, 1); }
