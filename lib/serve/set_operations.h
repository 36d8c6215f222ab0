#pragma once
// `cbir serve` on a store set: the operations rank 0 broadcasts to every rank of the job, their
// wire format, and how one rank applies them to the shards it owns (ShardHost). A rank owns shards
// r, r+R, … (shards_of_task) and serves each with an ordinary SearchService, so every write to a
// shard is the single store's write (catalogue commit first, then the index; durable when answered).
//
// What crosses the ranks is a batch: the operations queued on rank 0 since the last one, applied by
// every rank in order. Each rank answers every operation with nothing (not its shard), a value, or
// an error carrying its HTTP status; rank 0 gathers the answers and makes one reply of them.
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "serve/search_service.h"
#include "shard/set_search.h"
#include "shard/store_set.h"

namespace cbir {

enum class SetOp : uint8_t {
    Search = 1,     // vector + request: every shard's hits (global ids)
    Record,         // global id: the owner's row
    File,           // global id: the owner's row and its checked file bytes
    ContentVector,  // sha256: the vector of a row with that content, from any shard
    AddUpload,      // shard + bytes: the owner stores and commits the upload
    AddPath,        // shard + path: the owner embeds and commits the file
    RemoveId,       // global id: the owner removes the row
    RemovePath,     // path: whichever shard holds it removes it (an upload lives in its own shard)
    Status,         // every shard's counts
    Stop,           // every rank closes its shards (saving their indexes) and leaves the loop
};

// One rank's answer to one operation.
struct SetAnswer {
    enum class Kind : uint8_t { None = 0, Value = 1, Failed = 2 };
    Kind kind = Kind::None;
    std::string value;    // Value: the operation's own encoding (see set_operations.cpp)
    int status = 0;       // Failed: the HTTP status (500 for an error that is not the request's fault)
    std::string message;  // Failed
};

std::string encode_batch(const std::vector<std::string>& operations);
std::vector<std::string> decode_batch(std::string batch);
std::string encode_answers(const std::vector<SetAnswer>& answers);
std::vector<SetAnswer> decode_answers(std::string data);

// Operations, as rank 0 writes them.
std::string search_operation(const std::vector<float>& vector, const SearchRequest& request);
std::string id_operation(SetOp op, int64_t global_id);  // Record, File, RemoveId
std::string text_operation(SetOp op, const std::string& text);  // ContentVector, RemovePath
std::string shard_operation(SetOp op, int shard, const std::string& payload);  // AddUpload, AddPath
std::string bare_operation(SetOp op);  // Status, Stop
SetOp operation_code(const std::string& operation);
// Whether an operation only reads (it may run beside other reads).
bool is_read(SetOp op);

// Values, as rank 0 reads them.
struct SearchValue {
    std::string index_kind;
    std::vector<SetHit> hits;
};
SearchValue decode_search_value(std::string value);
ImageRecord decode_record(std::string value);                    // Record (id global)
CataloguedFile decode_file(std::string value);                   // File (id global)
AddResult decode_change(std::string value);                      // AddUpload, AddPath, Remove* (id global)
std::vector<float> decode_vector(std::string value);             // ContentVector
// Status: per shard, its status (store_dir, counts, index kind and spec, in place or not).
std::vector<std::pair<ServiceStatus, bool>> decode_statuses(std::string value);

// The shards one rank serves: one SearchService each, opened together.
class ShardHost {
public:
    // Opens every shard in `shards` of the set (options.store_dir is ignored; options.roots must be
    // set: a shard's own default, the folder holding it, would be the set). Throws cbir::Error
    // naming the shard when one cannot be opened.
    ShardHost(const StoreSet& set, const std::vector<int>& shards, const ServiceOptions& options);
    ~ShardHost();

    // Every operation of a batch, in order: this rank's answers. Never throws for an operation's
    // failure (it is the answer); Stop is answered and makes stopped() true.
    std::string apply(const std::string& batch);
    bool stopped() const { return stopped_; }
    // A shard's service on this rank, or null.
    SearchService* service(int shard) const;
    const StoreSet& set() const { return set_; }
    // Closes every shard (the index files are saved). Idempotent.
    void close();

private:
    // The operation's answer, its failure included; `alone`: no other operation runs beside it.
    SetAnswer answer(const std::string& operation, bool alone);
    SetAnswer apply_one(const std::string& operation, bool alone);
    StoreSet set_;
    std::map<int, std::unique_ptr<SearchService>> services_;
    bool stopped_ = false;
};

}  // namespace cbir
