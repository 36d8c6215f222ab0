#pragma once
// `cbir serve --store SET`, alone or as an MPI job (mpirun -np R, srun --mpi=pmix): rank 0 runs the
// HTTP server (HttpApi, exactly as for one store) over this ServeBackend; every rank serves its own
// shards (ShardHost). One thread on rank 0, the one that joined MPI, owns every MPI call: request
// threads queue operations and wait; that thread broadcasts what is queued as one batch, applies it to
// rank 0's own shards, gathers every rank's answers and hands each request its reply. The other ranks
// follow (follow_operations) until the stop operation.
//
// Routing (the placement of store_set.h, nothing new): an id names its shard in its high bits; a file
// added by path goes to set.shard_of(its catalogue key); an upload goes to set.shard_of(the SHA-256
// hex of its bytes), the shard whose uploads/ folder then holds it, so the same upload twice is one
// row. Searches go to every shard and are merged by (distance, global id) as `cbir query` merges
// (merge_hits). Removal by path asks every shard (an upload's path is in its own shard's folder).
//
// Every rank receives the whole batch, an upload's bytes included, although only the owner uses them:
// the Communicator offers collectives only, and one broadcast per batch keeps every rank in step.
//
// Failure is fail-stop: an error in the exchange itself ends the whole job (Communicator::abort),
// and a rank that dies takes the job down with it (Open MPI), so no answer is ever made from part of
// the set.
#include <condition_variable>
#include <deque>
#include <future>
#include <mutex>
#include <string>
#include <vector>

#include "serve/serve_backend.h"
#include "serve/set_operations.h"

namespace cbir {

class Communicator;

class SetBackend final : public ServeBackend {
public:
    // `host` is rank 0's own shards (shard 0 among them: its model embeds uploads searched for);
    // `job` is null when one process serves the whole set.
    SetBackend(ShardHost& host, Communicator* job);
    ~SetBackend() override;

    SearchAnswer search_vector(const std::vector<float>& vector, const SearchRequest& request) const override;
    SearchAnswer search_id(int64_t id, const SearchRequest& request) const override;
    SearchAnswer search_image(const std::string& bytes, const SearchRequest& request) const override;
    AddResult add_upload(const std::string& bytes) override;
    AddResult add_path(const std::string& path) override;
    AddResult remove_id(int64_t id) override;
    AddResult remove_path(const std::string& path) override;
    std::optional<ImageRecord> image(int64_t id) const override;
    CataloguedFile image_file(int64_t id) const override;
    ServiceStatus status() const override;
    bool store_in_place() const override;

    // On the thread that owns MPI: runs queued operations until finish(), then sends every rank the
    // stop operation (each closes its shards) and returns. An error in the exchange aborts the job.
    void run();
    // Safe from any thread: operations queued so far still run, later ones get 503.
    void finish();

private:
    // Queues one operation and waits for every rank's answer to it (index = rank).
    std::vector<SetAnswer> call(std::string operation) const;
    // The only answer among the ranks' (an operation for one owner): its value, or its error
    // thrown; nullopt when no rank had anything.
    std::optional<std::string> single_value(const std::vector<SetAnswer>& answers) const;
    SearchAnswer search(const std::vector<float>& vector, const SearchRequest& request, std::string kind) const;
    void exchange(std::vector<std::string> operations, std::vector<std::promise<std::vector<SetAnswer>>>& replies);

    ShardHost& host_;
    Communicator* job_;
    int ranks_;

    struct Pending {
        std::string operation;
        std::promise<std::vector<SetAnswer>> reply;
    };
    mutable std::mutex queue_mutex_;
    mutable std::condition_variable queue_wake_;
    mutable std::deque<Pending> queue_;
    bool finishing_ = false;
};

// Ranks other than 0: apply each broadcast batch to this rank's shards and send the answers back,
// until the stop operation. Idle, a rank waits in Communicator::broadcast, which polls with a sleep.
void follow_operations(ShardHost& host, Communicator& job);

// Every rank says whether it is ready to serve (empty) or why not; every rank learns the first
// failure, "rank R: cause", or empty when all are ready. Null job: `failure` itself.
std::string agree_to_start(Communicator* job, const std::string& failure);

}  // namespace cbir
