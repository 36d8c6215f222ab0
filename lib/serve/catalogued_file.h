#pragma once
// A file is served only if it is what the catalogue says. Between indexing and serving, the file at a
// row's path may have been edited, truncated, or replaced (by a symlink to a secret, by a FIFO that
// would block the reader): the one reader of catalogued files for every route checks the file it
// opened against the row (a regular file, its size and mtime, the sha256 of the bytes read).
#include <string>

#include "store/catalogue.h"

namespace cbir {

// The file's bytes when they are the row's; throws RequestError 410 (naming the path and what
// differs) otherwise.
std::string read_catalogued_file(const ImageRecord& record);

}  // namespace cbir
