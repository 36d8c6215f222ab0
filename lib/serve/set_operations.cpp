#include "serve/set_operations.h"

#include <algorithm>
#include <atomic>
#include <future>
#include <thread>
#include <utility>

#include <fmt/format.h>

#include "cluster/wire_bytes.h"
#include "util/log.h"

namespace cbir {
namespace {

void put_request(WireBytes& b, const SearchRequest& r) {
    b.put<int32_t>(r.k);
    b.put<int32_t>(r.ef);
    b.put<int32_t>(r.nprobe);
    b.put<uint8_t>(r.max_distance ? 1 : 0);
    b.put<float>(r.max_distance.value_or(0.0f));
}

SearchRequest get_request(WireBytes& b) {
    SearchRequest r;
    r.k = b.get<int32_t>();
    r.ef = b.get<int32_t>();
    r.nprobe = b.get<int32_t>();
    const bool has_max = b.get<uint8_t>() != 0;
    const float max = b.get<float>();
    if (has_max) r.max_distance = max;
    return r;
}

void put_record(WireBytes& b, const ImageRecord& r) {
    b.put<int64_t>(r.id);
    b.put_string(r.path);
    b.put<int64_t>(r.size);
    b.put<int64_t>(r.mtime_ns);
    b.put_string(r.sha256);
    b.put<int32_t>(r.width);
    b.put<int32_t>(r.height);
    b.put_floats(r.vector);
}

ImageRecord get_record(WireBytes& b) {
    ImageRecord r;
    r.id = b.get<int64_t>();
    r.path = b.get_string();
    r.size = b.get<int64_t>();
    r.mtime_ns = b.get<int64_t>();
    r.sha256 = b.get_string();
    r.width = b.get<int32_t>();
    r.height = b.get<int32_t>();
    r.vector = b.get_floats();
    return r;
}

std::string change_value(int shard, const AddResult& change) {
    WireBytes b;
    b.put<int64_t>(global_id(shard, change.id));
    b.put_string(change.path);
    b.put_string(change.status);
    return std::move(b.data());
}

SetAnswer value(std::string v) { return {SetAnswer::Kind::Value, std::move(v), 0, {}}; }

}  // namespace

std::string encode_batch(const std::vector<std::string>& operations) {
    WireBytes b;
    b.put<uint64_t>(operations.size());
    for (const auto& op : operations) b.put_string(op);
    return std::move(b.data());
}

std::vector<std::string> decode_batch(std::string batch) {
    WireBytes b(std::move(batch));
    std::vector<std::string> out;
    const uint64_t n = b.get<uint64_t>();
    for (uint64_t i = 0; i < n; ++i) out.push_back(b.get_string());
    return out;
}

std::string encode_answers(const std::vector<SetAnswer>& answers) {
    WireBytes b;
    b.put<uint64_t>(answers.size());
    for (const auto& a : answers) {
        b.put<uint8_t>(static_cast<uint8_t>(a.kind));
        if (a.kind == SetAnswer::Kind::Value) b.put_string(a.value);
        if (a.kind == SetAnswer::Kind::Failed) {
            b.put<int32_t>(a.status);
            b.put_string(a.message);
        }
    }
    return std::move(b.data());
}

std::vector<SetAnswer> decode_answers(std::string data) {
    WireBytes b(std::move(data));
    std::vector<SetAnswer> out;
    for (uint64_t n = b.get<uint64_t>(); n > 0; --n) {
        SetAnswer& a = out.emplace_back();
        a.kind = static_cast<SetAnswer::Kind>(b.get<uint8_t>());
        if (a.kind == SetAnswer::Kind::Value) a.value = b.get_string();
        else if (a.kind == SetAnswer::Kind::Failed) {
            a.status = b.get<int32_t>();
            a.message = b.get_string();
        } else if (a.kind != SetAnswer::Kind::None) {
            throw Error("a rank answered with an unknown kind of answer");
        }
    }
    return out;
}

std::string search_operation(const std::vector<float>& vector, const SearchRequest& request) {
    WireBytes b;
    b.put<uint8_t>(static_cast<uint8_t>(SetOp::Search));
    b.put_floats(vector);
    put_request(b, request);
    return std::move(b.data());
}

std::string id_operation(SetOp op, int64_t id) {
    WireBytes b;
    b.put<uint8_t>(static_cast<uint8_t>(op));
    b.put<int64_t>(id);
    return std::move(b.data());
}

std::string text_operation(SetOp op, const std::string& text) {
    WireBytes b;
    b.put<uint8_t>(static_cast<uint8_t>(op));
    b.put_string(text);
    return std::move(b.data());
}

std::string shard_operation(SetOp op, int shard, const std::string& payload) {
    WireBytes b;
    b.put<uint8_t>(static_cast<uint8_t>(op));
    b.put<int32_t>(shard);
    b.put_string(payload);
    return std::move(b.data());
}

std::string bare_operation(SetOp op) { return std::string(1, static_cast<char>(op)); }

bool is_read(SetOp op) {
    return op == SetOp::Search || op == SetOp::Record || op == SetOp::File || op == SetOp::ContentVector ||
           op == SetOp::Status;
}

SetOp operation_code(const std::string& operation) {
    if (operation.empty()) throw Error("an empty operation between ranks");
    return static_cast<SetOp>(operation[0]);
}

SearchValue decode_search_value(std::string value) {
    WireBytes b(std::move(value));
    SearchValue out;
    out.index_kind = b.get_string();
    for (uint64_t n = b.get<uint64_t>(); n > 0; --n) {
        SetHit& h = out.hits.emplace_back();
        h.distance = b.get<float>();
        h.id = b.get<int64_t>();
        h.path = b.get_string();
    }
    return out;
}

ImageRecord decode_record(std::string value) {
    WireBytes b(std::move(value));
    return get_record(b);
}

CataloguedFile decode_file(std::string value) {
    WireBytes b(std::move(value));
    CataloguedFile file;
    file.record = get_record(b);
    file.bytes = b.get_string();
    return file;
}

AddResult decode_change(std::string value) {
    WireBytes b(std::move(value));
    AddResult change;
    change.id = b.get<int64_t>();
    change.path = b.get_string();
    change.status = b.get_string();
    return change;
}

std::vector<float> decode_vector(std::string value) {
    WireBytes b(std::move(value));
    return b.get_floats();
}

std::vector<std::pair<ServiceStatus, bool>> decode_statuses(std::string value) {
    WireBytes b(std::move(value));
    std::vector<std::pair<ServiceStatus, bool>> out;
    for (uint64_t n = b.get<uint64_t>(); n > 0; --n) {
        auto& [s, in_place] = out.emplace_back();
        s.store_dir = b.get_string();
        s.images = b.get<uint64_t>();
        s.indexed = b.get<uint64_t>();
        s.index_kind = b.get_string();
        s.index_spec = b.get_string();
        s.generation = b.get<uint64_t>();
        s.saved_generation = b.get<uint64_t>();
        s.images_embedded = b.get<uint64_t>();
        s.inference_batches = b.get<uint64_t>();
        in_place = b.get<uint8_t>() != 0;
    }
    return out;
}

ShardHost::ShardHost(const StoreSet& set, const std::vector<int>& shards, const ServiceOptions& options) : set_(set) {
    for (int shard : shards) {
        const auto dir = set.shard_dir(shard);
        if (!Store::exists(dir))
            throw Error(fmt::format("{}: shard {} of the set has no store (its index task has not run or failed; run it "
                                    "again with --shard {})",
                                    dir.string(), shard, shard));
        ServiceOptions shard_options = options;
        shard_options.store_dir = dir;
        // One model per rank, whatever the number of shards it serves (they share the set's model).
        if (!services_.empty()) shard_options.engine = services_.begin()->second->engine();
        services_[shard] = SearchService::open(shard_options);
    }
}

ShardHost::~ShardHost() {
    try {
        close();
    } catch (const std::exception& e) {
        log_warning(fmt::format("closing the shards: {}", e.what()));
    }
}

SearchService* ShardHost::service(int shard) const {
    auto it = services_.find(shard);
    return it == services_.end() ? nullptr : it->second.get();
}

void ShardHost::close() {
    for (auto& [shard, service] : services_) service->close();
}

SetAnswer ShardHost::answer(const std::string& operation, bool alone) {
    try {
        return apply_one(operation, alone);
    } catch (const RequestError& e) {
        return {SetAnswer::Kind::Failed, {}, e.status(), e.what()};
    } catch (const std::exception& e) {
        return {SetAnswer::Kind::Failed, {}, 500, e.what()};
    }
}

std::string ShardHost::apply(const std::string& batch) {
    const std::vector<std::string> operations = decode_batch(batch);
    std::vector<SetAnswer> answers(operations.size());
    // Writes run one after another in the batch's order; a run of reads between them runs in
    // parallel, as a single store's request threads search in parallel (SearchService is made for
    // it), so a rank uses its cores when requests queue up.
    const size_t workers = std::max(1u, std::thread::hardware_concurrency());
    for (size_t i = 0; i < operations.size();) {
        size_t end = i;
        while (end < operations.size() && is_read(operation_code(operations[end]))) ++end;
        if (end - i <= 1) {
            answers[i] = answer(operations[i], /*alone=*/true);
            i += 1;
            continue;
        }
        std::atomic<size_t> next{i};
        auto work = [&] {
            for (size_t j; (j = next++) < end;) answers[j] = answer(operations[j], /*alone=*/false);
        };
        std::vector<std::thread> threads;
        for (size_t t = 1; t < std::min(workers, end - i); ++t) threads.emplace_back(work);
        work();
        for (auto& thread : threads) thread.join();
        i = end;
    }
    return encode_answers(answers);
}

SetAnswer ShardHost::apply_one(const std::string& operation, bool alone) {
    WireBytes in(operation);
    const SetOp op = static_cast<SetOp>(in.get<uint8_t>());
    // The shard an id names, when this rank owns it (a shard outside the set names no image).
    auto owner_of = [&](int64_t id) -> SearchService* { return id < 0 ? nullptr : service(shard_of_global_id(id)); };
    switch (op) {
        case SetOp::Search: {
            const std::vector<float> vector = in.get_floats();
            const SearchRequest request = get_request(in);
            if (services_.empty()) return {};
            WireBytes out;
            // A search that runs alone searches this rank's shards in parallel (its latency is then
            // one shard's); beside other reads, each read keeps to one thread.
            std::vector<std::pair<int, SearchService*>> shards;
            for (auto& [shard, service] : services_) shards.emplace_back(shard, service.get());
            std::vector<SearchAnswer> found(shards.size());
            auto search_shard = [&](size_t i) { found[i] = shards[i].second->search_vector(vector, request); };
            if (alone && shards.size() > 1) {
                std::vector<std::future<void>> running;
                for (size_t i = 1; i < shards.size(); ++i) running.push_back(std::async(std::launch::async, search_shard, i));
                search_shard(0);
                for (auto& f : running) f.get();  // rethrows a shard's failure
            } else {
                for (size_t i = 0; i < shards.size(); ++i) search_shard(i);
            }
            std::vector<SetHit> hits;
            std::string index_kind;
            for (size_t i = 0; i < shards.size(); ++i) {
                index_kind = found[i].index_kind;
                for (auto& hit : found[i].hits) hits.push_back({hit.distance, global_id(shards[i].first, hit.id), std::move(hit.path)});
            }
            out.put_string(index_kind);
            out.put<uint64_t>(hits.size());
            for (const auto& h : hits) {
                out.put<float>(h.distance);
                out.put<int64_t>(h.id);
                out.put_string(h.path);
            }
            return value(std::move(out.data()));
        }
        case SetOp::Record:
        case SetOp::File:
        case SetOp::RemoveId: {
            const int64_t id = in.get<int64_t>();
            SearchService* owner = owner_of(id);
            if (!owner) return {};
            const int64_t row = row_of_global_id(id);
            WireBytes out;
            if (op == SetOp::RemoveId) return value(change_value(shard_of_global_id(id), owner->remove_id(row)));
            if (op == SetOp::Record) {
                auto record = owner->image(row);
                if (!record) return {};
                record->id = id;
                put_record(out, *record);
            } else {
                CataloguedFile file = owner->image_file(row);
                file.record.id = id;
                put_record(out, file.record);
                out.put_string(file.bytes);
            }
            return value(std::move(out.data()));
        }
        case SetOp::ContentVector: {
            const std::string sha256 = in.get_string();
            for (auto& [shard, service] : services_)
                if (auto vector = service->vector_of_content(sha256)) {
                    WireBytes out;
                    out.put_floats(*vector);
                    return value(std::move(out.data()));
                }
            return {};
        }
        case SetOp::AddUpload:
        case SetOp::AddPath: {
            const int shard = in.get<int32_t>();
            const std::string payload = in.get_string();
            SearchService* owner = service(shard);
            if (!owner) return {};
            return value(change_value(shard, op == SetOp::AddUpload ? owner->add_upload(payload) : owner->add_path(payload)));
        }
        case SetOp::RemovePath: {
            const std::string path = in.get_string();
            for (auto& [shard, service] : services_) {
                try {
                    return value(change_value(shard, service->remove_path(path)));
                } catch (const RequestError& e) {
                    if (e.status() != 404) throw;  // not in this shard: perhaps in another
                }
            }
            return {};
        }
        case SetOp::Status: {
            WireBytes out;
            out.put<uint64_t>(services_.size());
            bool first = true;
            for (auto& [shard, service] : services_) {
                ServiceStatus s = service->status();
                if (!std::exchange(first, false)) s.images_embedded = s.inference_batches = 0;  // the rank's shared model
                out.put_string(s.store_dir.string());
                out.put<uint64_t>(s.images);
                out.put<uint64_t>(s.indexed);
                out.put_string(s.index_kind);
                out.put_string(s.index_spec);
                out.put<uint64_t>(s.generation);
                out.put<uint64_t>(s.saved_generation);
                out.put<uint64_t>(s.images_embedded);
                out.put<uint64_t>(s.inference_batches);
                out.put<uint8_t>(service->store_in_place() ? 1 : 0);
            }
            return value(std::move(out.data()));
        }
        case SetOp::Stop:
            stopped_ = true;
            close();
            return value({});
    }
    throw Error(fmt::format("unknown operation {} between ranks", static_cast<int>(op)));
}

}  // namespace cbir
