#pragma once
// One writer per store: an exclusive flock on "<store>/lock" for the whole of a writing command
// (index, reindex, remove, prune, repair). SQLite alone would let two index runs interleave their
// batches; with the lock the second one stops at once and says who holds the store. Readers
// (query, info, eval) take no lock: WAL gives them the last committed state. The kernel drops the
// lock when the process dies, so a killed run never leaves the store locked.
#include <filesystem>

namespace cbir {

// "<store>/lock"
std::filesystem::path writer_lock_file(const std::filesystem::path& store_dir);

class WriterLock {
public:
    // Throws cbir::Error naming the store and the holder's pid when another writer has it.
    explicit WriterLock(const std::filesystem::path& store_dir);
    ~WriterLock();
    WriterLock(const WriterLock&) = delete;
    WriterLock& operator=(const WriterLock&) = delete;

private:
    int fd_ = -1;
};

}  // namespace cbir
