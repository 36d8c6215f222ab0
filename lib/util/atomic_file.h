#pragma once
// Writes a file so that a crash leaves either the old file or the complete new one, never a torn
// mix: write to "<name>.tmp-<pid>-<n>", fsync it, rename over the target, fsync the directory.
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace cbir {

class AtomicFileWriter {
public:
    explicit AtomicFileWriter(std::filesystem::path target);
    ~AtomicFileWriter();  // removes the temporary file unless commit() succeeded
    AtomicFileWriter(const AtomicFileWriter&) = delete;
    AtomicFileWriter& operator=(const AtomicFileWriter&) = delete;

    void write(const void* data, size_t size);
    void write_at(uint64_t offset, const void* data, size_t size);  // patch bytes already written
    void commit();

private:
    std::filesystem::path target_;
    std::filesystem::path temp_;
    int fd_ = -1;
    bool committed_ = false;
};

// fsync a directory so that a rename inside it survives power loss.
void sync_directory(const std::filesystem::path& dir);

// Temporary files in `dir` left by writers that were killed before they committed: named as above,
// by a process that no longer runs.
std::vector<std::filesystem::path> abandoned_temporary_files(const std::filesystem::path& dir);

}  // namespace cbir
