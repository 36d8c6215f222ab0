#pragma once
// Writing a whole buffer to a file descriptor: write(2) may write less than it was given, or be
// interrupted by a signal, and either must be carried on from where it stopped.
#include <cstddef>
#include <cstdint>

namespace cbir {

// False, with errno set, when the descriptor takes no more (an error, or a write of nothing).
bool write_fully(int fd, const void* data, size_t size);
// The same at an offset (pwrite), the file position left alone.
bool write_fully_at(int fd, uint64_t offset, const void* data, size_t size);

}  // namespace cbir
