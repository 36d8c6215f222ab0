#pragma once
// HEIC and AVIF are decoded in a child process with its memory and CPU time capped by the size the
// file declares. libheif hands the coded stream to its codecs (libde265, dav1d, libaom), and they
// size their frames from the stream's own headers, not from the 'ispe' box that the pixel cap was
// checked against: a 2 KB file declaring 16×16 pixels can code 12000×12000 and take gigabytes. No
// public libheif call shows the coded size before decoding, so the cap is enforced where the memory
// is taken: the child (cbir-heif-decoder) runs under an address-space limit, and a file that needs
// more, crashes a codec, runs too long or decodes to more pixels than it declared is refused as
// corrupt, one line like any other, while cbir goes on.
#include <string>

#include "image/decode.h"
#include "image/image_header.h"

namespace cbir {

// header: read_heif_header's, within the pixel cap.
DecodedImage decode_heif(const std::string& bytes, const ImageHeader& header);

// The child's side: reads one file from in_fd, decodes it under the caps and writes the reply to
// out_fd. Returns the process's exit status.
int run_heif_decoder(int in_fd, int out_fd);

}  // namespace cbir
