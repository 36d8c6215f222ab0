#include "serve/set_backend.h"

#include <chrono>
#include <cstdio>

#include <fmt/format.h>

#include "cluster/communicator.h"
#include "util/hash.h"
#include "util/log.h"

namespace cbir {
namespace {

// Most operations, and most of their bytes, in one broadcast: what queued while the last batch ran.
constexpr size_t kMaxBatchOperations = 64;
constexpr size_t kMaxBatchBytes = size_t(256) << 20;

// The exit code of a job ended because its ranks no longer agree (what cbir exits with on an error).
constexpr int kJobFailedExitCode = 2;

void report_fatal(const std::string& message) {
    std::fprintf(stderr, "cbir: error: %s\n", message.c_str());
    std::fflush(stderr);
}

double milliseconds_since(std::chrono::steady_clock::time_point start) {
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
}

// The first rank's failure, thrown as the reply (its HTTP status kept); a failure that is not the
// request's fault is logged on rank 0 too, naming the rank.
void throw_first_failure(const std::vector<SetAnswer>& answers) {
    for (size_t rank = 0; rank < answers.size(); ++rank) {
        const SetAnswer& a = answers[rank];
        if (a.kind != SetAnswer::Kind::Failed) continue;
        if (a.status >= 500) log_warning(fmt::format("rank {}: {}", rank, a.message));
        throw RequestError(a.status, a.message);
    }
}

// A one-shot `cbir query` through a server asks for one store's catalogue state and model copy; a set
// has neither (and `cbir query --store SET` searches the shards itself), so it is told to.
void refuse_expectations(const SearchRequest& request) {
    if (request.has_expectations())
        throw RequestError(409, "a served store set answers no one-shot queries (cbir query --store SET searches the "
                                "shards itself)");
}

}  // namespace

SetBackend::SetBackend(ShardHost& host, Communicator* job) : host_(host), job_(job), ranks_(job ? job->size() : 1) {
    if (!host_.service(0)) throw Error("rank 0 must serve shard 0 (its model embeds the uploads searched for)");
}

SetBackend::~SetBackend() = default;

std::vector<SetAnswer> SetBackend::call(std::string operation) const {
    std::future<std::vector<SetAnswer>> reply;
    {
        std::lock_guard<std::mutex> lock(queue_mutex_);
        if (finishing_) throw RequestError(503, "the server is stopping");
        queue_.push_back({std::move(operation), {}});
        reply = queue_.back().reply.get_future();
    }
    queue_wake_.notify_one();
    return reply.get();
}

std::optional<std::string> SetBackend::single_value(const std::vector<SetAnswer>& answers) const {
    throw_first_failure(answers);
    for (const SetAnswer& a : answers)
        if (a.kind == SetAnswer::Kind::Value) return a.value;
    return std::nullopt;
}

SearchAnswer SetBackend::search(const std::vector<float>& vector, const SearchRequest& request, std::string kind) const {
    refuse_expectations(request);
    const auto started = std::chrono::steady_clock::now();
    const auto answers = call(search_operation(vector, request));
    throw_first_failure(answers);
    SearchAnswer answer;
    answer.query_kind = std::move(kind);
    answer.metric = host_.set().manifest().metric;
    std::vector<SetHit> hits;
    for (const SetAnswer& a : answers) {
        if (a.kind != SetAnswer::Kind::Value) continue;
        SearchValue v = decode_search_value(a.value);
        if (answer.index_kind.empty()) answer.index_kind = v.index_kind;
        for (auto& h : v.hits) hits.push_back(std::move(h));
    }
    answer.hits = merge_hits(std::move(hits), request.k);
    answer.search_ms = milliseconds_since(started);
    return answer;
}

SearchAnswer SetBackend::search_vector(const std::vector<float>& vector, const SearchRequest& request) const {
    return search(vector, request, "vector");
}

SearchAnswer SetBackend::search_id(int64_t id, const SearchRequest& request) const {
    auto record = image(id);
    if (!record) throw RequestError(404, fmt::format("no image with id {}", id));
    return search(record->vector, request, "id");
}

SearchAnswer SetBackend::search_image(const std::string& bytes, const SearchRequest& request) const {
    refuse_expectations(request);
    const auto started = std::chrono::steady_clock::now();
    // As one store: bytes already in the set are searched with their stored vector (whichever shard
    // holds them), else rank 0 embeds them with the set's model (shard 0's service) and every rank
    // gets the vector.
    if (auto known = single_value(call(text_operation(SetOp::ContentVector, sha256_hex(bytes.data(), bytes.size()))))) {
        SearchAnswer answer = search(decode_vector(*known), request, "stored");
        answer.embed_ms = milliseconds_since(started) - answer.search_ms;
        return answer;
    }
    const std::vector<float> vector = host_.service(0)->embed_bytes(bytes);
    const double embed_ms = milliseconds_since(started);
    SearchAnswer answer = search(vector, request, "embedded");
    answer.embed_ms = embed_ms;
    return answer;
}

AddResult SetBackend::add_upload(const std::string& bytes) {
    // An upload's shard: the placement hash of its content's SHA-256 (hex), the name it is stored
    // under; the owner checks, stores and commits it before its answer comes back.
    const int shard = host_.set().shard_of_upload(sha256_hex(bytes.data(), bytes.size()));
    auto value = single_value(call(shard_operation(SetOp::AddUpload, shard, bytes)));
    if (!value) throw Error(fmt::format("no rank serves shard {}", shard));
    return decode_change(std::move(*value));
}

AddResult SetBackend::add_path(const std::string& path) {
    // The key is worked out here as the owner will (403 outside the roots, 404 without the file), so
    // the shard is the one `cbir index` would have placed the file in.
    const int shard = host_.set().shard_of(host_.service(0)->catalogue_key_of(path));
    auto value = single_value(call(shard_operation(SetOp::AddPath, shard, path)));
    if (!value) throw Error(fmt::format("no rank serves shard {}", shard));
    return decode_change(std::move(*value));
}

AddResult SetBackend::remove_id(int64_t id) {
    auto value = single_value(call(id_operation(SetOp::RemoveId, id)));
    if (!value) throw RequestError(404, fmt::format("no image with id {}", id));
    return decode_change(std::move(*value));
}

AddResult SetBackend::remove_path(const std::string& path) {
    auto value = single_value(call(text_operation(SetOp::RemovePath, path)));
    if (!value) throw RequestError(404, fmt::format("{} is not in the store", path));
    return decode_change(std::move(*value));
}

std::optional<ImageRecord> SetBackend::image(int64_t id) const {
    auto value = single_value(call(id_operation(SetOp::Record, id)));
    if (!value) return std::nullopt;
    return decode_record(std::move(*value));
}

CataloguedFile SetBackend::image_file(int64_t id) const {
    auto value = single_value(call(id_operation(SetOp::File, id)));
    if (!value) throw RequestError(404, fmt::format("no image with id {}", id));
    return decode_file(std::move(*value));
}

ServiceStatus SetBackend::status() const {
    const auto answers = call(bare_operation(SetOp::Status));
    throw_first_failure(answers);
    // What every shard shares (model, metric, dimension, roots) is shard 0's; counts add up.
    ServiceStatus total = host_.service(0)->status();
    total.store_dir = host_.set().dir();
    total.shards = host_.set().shards();
    total.ranks = ranks_;
    total.images = total.indexed = 0;
    total.generation = total.saved_generation = 0;
    total.images_embedded = total.inference_batches = 0;
    for (const SetAnswer& a : answers) {
        if (a.kind != SetAnswer::Kind::Value) continue;
        for (const auto& [s, in_place] : decode_statuses(a.value)) {
            total.images += s.images;
            total.indexed += s.indexed;
            total.generation += s.generation;
            total.saved_generation += s.saved_generation;
            total.images_embedded += s.images_embedded;
            total.inference_batches += s.inference_batches;
        }
    }
    return total;
}

bool SetBackend::store_in_place() const {
    const auto answers = call(bare_operation(SetOp::Status));
    throw_first_failure(answers);
    for (const SetAnswer& a : answers)
        if (a.kind == SetAnswer::Kind::Value)
            for (const auto& [s, in_place] : decode_statuses(a.value))
                if (!in_place) return false;
    return true;
}

void SetBackend::finish() {
    {
        std::lock_guard<std::mutex> lock(queue_mutex_);
        finishing_ = true;
    }
    queue_wake_.notify_all();
}

void SetBackend::exchange(std::vector<std::string> operations,
                          std::vector<std::promise<std::vector<SetAnswer>>>& replies) {
    std::vector<std::vector<SetAnswer>> per_operation(operations.size());
    try {
        std::string batch = encode_batch(operations);
        if (job_) job_->broadcast(batch, 0);
        std::string mine = host_.apply(batch);
        std::vector<std::string> all;
        if (job_) all = job_->gather(mine, 0);
        else all.push_back(std::move(mine));
        for (size_t rank = 0; rank < all.size(); ++rank) {
            auto answers = decode_answers(std::move(all[rank]));
            if (answers.size() != operations.size())
                throw Error(fmt::format("rank {} answered {} operations of {}", rank, answers.size(), operations.size()));
            for (size_t i = 0; i < answers.size(); ++i) per_operation[i].push_back(std::move(answers[i]));
        }
    } catch (const std::exception& e) {
        // The ranks no longer agree on what was done: fail-stop, never an answer from part of the set.
        report_fatal(fmt::format("the exchange between ranks failed: {}", e.what()));
        if (job_) job_->abort(kJobFailedExitCode);
        for (auto& reply : replies) reply.set_exception(std::current_exception());
        return;
    }
    for (size_t i = 0; i < replies.size(); ++i) replies[i].set_value(std::move(per_operation[i]));
}

void SetBackend::run() {
    for (;;) {
        std::vector<std::string> operations;
        std::vector<std::promise<std::vector<SetAnswer>>> replies;
        {
            std::unique_lock<std::mutex> lock(queue_mutex_);
            queue_wake_.wait(lock, [&] { return !queue_.empty() || finishing_; });
            if (queue_.empty()) break;  // finishing, and nothing left to do
            size_t bytes = 0;
            while (!queue_.empty() && operations.size() < kMaxBatchOperations &&
                   (operations.empty() || bytes + queue_.front().operation.size() <= kMaxBatchBytes)) {
                bytes += queue_.front().operation.size();
                operations.push_back(std::move(queue_.front().operation));
                replies.push_back(std::move(queue_.front().reply));
                queue_.pop_front();
            }
        }
        exchange(std::move(operations), replies);
    }
    std::vector<std::promise<std::vector<SetAnswer>>> none(1);
    exchange({bare_operation(SetOp::Stop)}, none);
}

void follow_operations(ShardHost& host, Communicator& job) {
    while (!host.stopped()) {
        std::string batch;
        job.broadcast(batch, 0);
        std::string mine;
        try {
            mine = host.apply(batch);
        } catch (const std::exception& e) {
            report_fatal(fmt::format("rank {}: a batch from rank 0 could not be read: {}", job.rank(), e.what()));
            job.abort(kJobFailedExitCode);
        }
        job.gather(mine, 0);
    }
}

std::string agree_to_start(Communicator* job, const std::string& failure) {
    if (!job) return failure;
    const auto all = job->gather(failure, 0);
    std::string verdict;
    for (size_t rank = 0; rank < all.size() && verdict.empty(); ++rank)
        if (!all[rank].empty()) verdict = fmt::format("rank {}: {}", rank, all[rank]);
    job->broadcast(verdict, 0);
    return verdict;
}

}  // namespace cbir
