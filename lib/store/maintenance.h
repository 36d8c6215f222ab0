#pragma once
// Keeping a store honest: `cbir check` (is everything consistent?), `cbir remove` and `cbir prune`
// (deletes that reach the index), and the repair (`cbir repair`, a rebuild of the derived index).
#include <string>
#include <vector>

#include "store/store.h"
#include "store/writer_lock.h"

namespace cbir {

struct CheckReport {
    std::vector<std::string> problems;  // each names the file, the fault and the repair
    std::vector<std::string> notes;     // fine but worth knowing (a stale index is rebuilt by a query)
    bool ok() const { return problems.empty(); }
};

// Catalogue integrity (SQLite's check, metadata, vector sizes), the model file against its recorded
// sha256, the index file's header and checksum against the catalogue, and a sample of up to
// `samples` vectors, each of which must find itself first in the index.
CheckReport check_store(Store& store, size_t samples = 100);

// Removes what killed writers left in the store (abandoned temporary files); returns how many.
size_t remove_abandoned_files(Store& store);

// Rows whose file no longer exists (under `roots`, catalogue keys, when given, else anywhere).
std::vector<std::string> rows_whose_files_are_gone(Store& store, const std::vector<std::string>& roots);

// The catalogue keys a path names: its own row, or every row under it when it names a folder
// (`cbir remove DIR`, as `prune FOLDER` scopes). Empty when it names nothing in the store.
std::vector<std::string> rows_named_by(Store& store, const std::string& key);

// Writes take the store's writer lock as proof that the caller holds it (writer_lock.h).
// Deletes these rows (catalogue keys) in one transaction; returns how many there were.
size_t remove_rows(Store& store, const WriterLock& held, const std::vector<std::string>& paths);
// The same, and then the index file follows (`cbir remove`, `cbir prune`).
size_t remove_from_store(Store& store, const WriterLock& held, const std::vector<std::string>& paths);

}  // namespace cbir
