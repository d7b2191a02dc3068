// SPDX-License-Identifier: Apache-2.0
#include "split/splitter.h"

#include "common/error.h"
#include "common/file_io.h"
#include "common/hash.h"
#include "common/interrupt.h"
#include "common/quant.h"
#include "common/timing.h"
#include "common/units.h"
#include "common/strings.h"
#include "format/gguf.h"
#include "format/gguf_import.h"
#include "format/manifest.h"
#include "format/split_model.h"
#include "split/journal.h"
#include "split/quantize_rows.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <map>
#include <memory>
#include <sys/stat.h>
#include <unistd.h>

namespace rabbit {

namespace {

constexpr uint64_t k_flush_window = 64ull << 20; // bytes written between write-back kicks
constexpr uint64_t k_space_margin = 4ull << 20;  // manifest, journal, file system slack

// A file that `rabbit split` may have written into OUT.
bool is_split_output_name(const std::string& name) {
    std::string base = ends_with(name, ".tmp") ? name.substr(0, name.size() - 4) : name;
    if (base == k_manifest_file || base == k_journal_file || ends_with(base, ".rbt")) return true;
    const auto& companions = hf_companion_files();
    return std::find(companions.begin(), companions.end(), base) != companions.end();
}

dev_t device_of(const std::string& path) {
    struct stat st;
    return ::stat(path.c_str(), &st) == 0 ? st.st_dev : dev_t(-1);
}

// Whether removing this path gives its bytes back: a regular file with no other hard link
// on OUT's file system. A symlink (a Hugging Face cache snapshot) frees nothing: only the
// link is removed, its target may serve other snapshots.
bool removal_frees_space(const std::string& path, dev_t out_dev) {
    struct stat st;
    return ::lstat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode) && st.st_nlink == 1 && st.st_dev == out_dev;
}

bool is_symlink(const std::string& path) {
    struct stat st;
    return ::lstat(path.c_str(), &st) == 0 && S_ISLNK(st.st_mode);
}

// Opens source shards on first use and keeps them open for the run.
class ShardReaders {
public:
    ShardReaders(const HfCheckpoint& ck, const std::function<void(const std::string&)>& before_reading)
        : ck_(ck), before_reading_(before_reading), files_(ck.shards.size()) {}
    const InputFile& get(uint32_t shard) {
        if (!files_[shard]) {
            RABBIT_CHECK(ck_.shards[shard].present, "reading a deleted shard: " + ck_.shards[shard].file);
            if (before_reading_) before_reading_(ck_.shard_path(shard));
            files_[shard] = std::make_unique<InputFile>(ck_.shard_path(shard));
            files_[shard]->advise_sequential();
            if (files_[shard]->size() != ck_.shards[shard].size)
                throw bad_input(ck_.shard_path(shard), "changed size while rabbit was reading it");
        }
        return *files_[shard];
    }
    void close(uint32_t shard) { files_[shard].reset(); }

private:
    const HfCheckpoint& ck_;
    const std::function<void(const std::string&)>& before_reading_;
    std::vector<std::unique_ptr<InputFile>> files_;
};

// Copies a piece's bytes unchanged, a buffer at a time.
template <typename Emit>
void copy_piece(const InputFile& in, const SourcePiece& piece, std::vector<uint8_t>& buf, Emit& emit) {
    for (uint64_t b = 0; b < piece.nbytes; b += buf.size()) {
        throw_if_interrupted();
        const size_t m = size_t(std::min<uint64_t>(buf.size(), piece.nbytes - b));
        in.read_at(buf.data(), m, piece.offset + b);
        emit(buf.data(), m);
    }
}

// Writes one unit file and returns the XXH3-64 of everything written.
uint64_t write_unit(const PlannedUnit& pu, const std::string& path, ShardReaders& src, std::vector<uint8_t>& in_buf,
                    std::vector<uint8_t>& out_buf, RowQuantizer& quantizer, SplitProgress& progress) {
    OutputFile out(path);
    out.preallocate(pu.layout.file_size());
    Hasher hash;
    uint64_t since_flush = 0;
    auto emit = [&](const void* p, size_t n) {
        out.write(p, n);
        hash.update(p, n);
        progress.advance(n);
        since_flush += n;
        if (since_flush >= k_flush_window) {
            out.flush_behind();
            since_flush = 0;
        }
    };
    static const std::vector<uint8_t> zeros(k_unit_align, 0);
    uint64_t pos = 0; // inside the data section
    auto pad_to = [&](uint64_t target) {
        while (pos < target) {
            size_t n = size_t(std::min<uint64_t>(target - pos, zeros.size()));
            emit(zeros.data(), n);
            pos += n;
        }
    };

    const std::string header = encode_unit_header(pu.layout);
    emit(header.data(), header.size());
    for (size_t i = 0; i < pu.layout.tensors.size(); ++i) {
        const UnitTensor& t = pu.layout.tensors[i];
        pad_to(t.offset);
        for (const SourcePiece& piece : pu.pieces[i]) {
            const InputFile& in = src.get(piece.shard);
            if (piece.dtype == t.dtype) { // a copy, by bytes: a quantized type has no element size
                copy_piece(in, piece, in_buf, emit);
                pos += piece.nbytes;
                continue;
            }
            if (is_quant_dtype(t.dtype)) { // whole rows at a time: quantize_rows.h
                pos += quantizer.write_piece(in, piece, t.dtype, t.shape[1], emit);
                continue;
            }
            const size_t in_el = dtype_size(piece.dtype), out_el = dtype_size(t.dtype);
            const uint64_t n_el = piece.nbytes / in_el;
            const uint64_t chunk_el = in_buf.size() / std::max(in_el, out_el);
            for (uint64_t e = 0; e < n_el; e += chunk_el) {
                throw_if_interrupted();
                const size_t m = size_t(std::min(chunk_el, n_el - e));
                in.read_at(in_buf.data(), m * in_el, piece.offset + e * in_el);
                if (piece.dtype == t.dtype) {
                    emit(in_buf.data(), m * in_el);
                } else {
                    convert_elements(in_buf.data(), piece.dtype, out_buf.data(), t.dtype, m);
                    emit(out_buf.data(), m * out_el);
                }
            }
            pos += n_el * out_el;
        }
    }
    pad_to(pu.layout.data_size);
    RABBIT_CHECK(out.written() == pu.layout.file_size(), "unit " + pu.layout.name + " written size differs from its layout");
    out.commit();
    return hash.digest();
}

// True when `path` holds exactly this unit: its size, header and checksum. from_disk: the
// checksum is of what the disk returns, not the page cache (before sources are deleted).
bool unit_file_matches(const PlannedUnit& pu, const std::string& path, uint64_t xxh3, bool from_disk) {
    try {
        if (!path_exists(path) || file_size(path) != pu.layout.file_size()) return false;
        InputFile f(path);
        if (!(read_unit_header(f) == pu.layout)) return false;
        return hash_file(path, from_disk) == xxh3;
    } catch (const Error& e) {
        if (e.code() == ExitCode::interrupted) throw;
        return false;
    }
}

void remove_file(const std::string& path) {
    if (::unlink(path.c_str()) != 0 && errno != ENOENT) throw output_error(path, "cannot remove: " + errno_text(errno));
}

// The companion files to copy, checked before any unit is written. config.json and
// generation_config.json are written from the text that was parsed and fingerprinted.
struct Companion {
    std::string name;
    std::string source;   // path to copy from, or "" when `contents` is used
    std::string contents;
};

std::vector<Companion> companions_of(const HfCheckpoint& ck) {
    std::vector<Companion> out;
    if (ck.from_gguf()) { // made from the metadata: nothing beside the GGUF is the model's
        out.push_back({"config.json", "", ck.config_text});
        if (ck.generation_text) out.push_back({"generation_config.json", "", *ck.generation_text});
        for (const auto& [name, text] : ck.made_files) out.push_back({name, "", text});
        return out;
    }
    for (const auto& name : hf_companion_files()) {
        if (name == "config.json") {
            out.push_back({name, "", ck.config_text});
        } else if (name == "generation_config.json") {
            if (ck.generation_text) out.push_back({name, "", *ck.generation_text});
        } else {
            const std::string path = join_path(ck.dir, name);
            if (!path_exists(path)) continue;
            InputFile check(path); // a regular, readable file, or bad_input now rather than at the end
            out.push_back({name, path, ""});
        }
    }
    return out;
}

// The source shards a run removes with --delete-original, and when.
class ShardDeleter {
public:
    ShardDeleter(HfCheckpoint& ck, bool enabled) : ck_(ck), enabled_(enabled) {}

    // Removes every present shard no unit still needs. `record` is called with the shard's
    // description before it is removed: a run killed after the unlink must still find it.
    template <typename Record>
    void remove_finished(const std::vector<size_t>& users, ShardReaders& readers, Record record,
                         std::vector<std::string>* removed) {
        if (!enabled_) return;
        for (uint32_t s = 0; s < ck_.shards.size(); ++s) {
            if (users[s] != 0 || !ck_.shards[s].present) continue;
            DeletedShard d{ck_.shards[s], {}};
            for (const auto& [name, t] : ck_.tensors)
                if (t.shard == s) d.tensors.push_back(t);
            record(std::move(d));
            readers.close(s);
            const std::string path = ck_.shard_path(s);
            const bool link = is_symlink(path);
            remove_file(path);
            fsync_directory(ck_.dir);
            ck_.shards[s].present = false;
            removed->push_back(path);
            if (link)
                spdlog::warn("removed the symbolic link {}; its target stays (another snapshot may use it), so no space "
                             "was freed", path);
            else
                spdlog::info("deleted {} ({}): every unit read from it is written and verified", path,
                             format_bytes(ck_.shards[s].size));
        }
    }

private:
    HfCheckpoint& ck_;
    bool enabled_;
};

// One run of `rabbit split`: the steps below, in order, over the state they share. Nothing
// is written before the source is read and planned; the manifest is written last.
class Splitter {
public:
    Splitter(const SplitOptions& opt, SplitProgress& progress)
        : opt_(opt), out_(opt.out_dir), progress_(progress), manifest_path_(join_path(out_, k_manifest_file)),
          journal_path_(join_path(out_, k_journal_file)) {}

    SplitResult run() {
        const Clock::time_point t0 = Clock::now();
        read_earlier_run();
        plan_from_source();
        make_directories(out_);
        for (const auto& name : list_directory(out_)) // temporary files of a killed run
            if (ends_with(name, ".tmp") && is_split_output_name(name)) remove_file(join_path(out_, name));
        collect_candidates();
        progress_.start(result_.bytes_total, plan_.units.size());
        keep_verified_units();
        for (size_t i = 0; i < plan_.units.size(); ++i) // units still to write, per source shard
            if (!done_[i])
                for (uint32_t s : plan_.units[i].shards) ++users_[s];
        ShardReaders readers(ck_, opt_.before_reading_shard);
        ShardDeleter deleter(ck_, opt_.delete_original);
        if (manifest_ && result_.units_reused == plan_.units.size()) {
            finish_up_to_date(readers, deleter);
            return finish(t0);
        }
        if (manifest_) { // some unit is damaged: the manifest must not point at it while we rewrite
            remove_file(manifest_path_);
            fsync_directory(out_);
        }
        check_free_space();
        const SplitJournal j = write_units(readers, deleter);
        write_manifest(j);
        return finish(t0);
    }

private:
    SplitResult finish(Clock::time_point t0) {
        progress_.finish();
        result_.seconds = seconds_since(t0);
        return result_;
    }

    // OUT's journal and manifest, if any. A directory with neither must be empty (or, with
    // --force, hold only names a split writes).
    void read_earlier_run() {
        if (!is_directory(out_)) return;
        const bool ours = path_exists(manifest_path_) || path_exists(journal_path_);
        for (const auto& name : list_directory(out_))
            if (!ours && !(opt_.force && is_split_output_name(name)))
                throw output_error(out_, "is not empty and holds no rabbit split (found '" + name +
                                             "'); choose an empty or new directory");
        std::string journal_problem;
        journal_ = read_journal(out_, &journal_problem);
        if (!journal_problem.empty()) spdlog::warn("ignoring the unreadable split journal: {}", journal_problem);
        if (path_exists(manifest_path_)) {
            try {
                manifest_ = Manifest::parse(read_text_file(manifest_path_), manifest_path_);
            } catch (const Error& e) {
                if (!opt_.force)
                    throw output_error(manifest_path_, std::string("is unreadable (") + e.what() +
                                                           "); use --force to split again into this directory");
            }
        }
    }

    void plan_from_source() {
        // Shards an earlier --delete-original run removed: the journal knows while a split
        // runs, the manifest once it is done.
        deleted_ = journal_ ? journal_->deleted : manifest_ ? manifest_->deleted_sources : std::vector<DeletedShard>{};
        ck_ = looks_like_gguf(opt_.model_dir) ? open_gguf_checkpoint(opt_.model_dir)
                                              : open_hf_checkpoint(opt_.model_dir, deleted_);
        plan_ = plan_split(ck_, opt_.dtype);
        for (const auto& note : plan_.notes) spdlog::debug("{}", note);
        for (const auto& note : plan_.fallbacks) spdlog::info("{}", note);
        // A quantized type this build cannot write is refused before anything is written, when
        // a tensor needs converting to it; one copied as it is (a GGUF's Q2_K) needs nothing.
        for (const auto& u : plan_.units)
            for (size_t i = 0; i < u.layout.tensors.size(); ++i) {
                const UnitTensor& t = u.layout.tensors[i];
                const bool converts = std::any_of(u.pieces[i].begin(), u.pieces[i].end(),
                                                  [&](const SourcePiece& p) { return p.dtype != t.dtype; });
                if (converts && is_quant_dtype(t.dtype) && !can_quantize(t.dtype))
                    throw unsupported(opt_.model_dir, std::string("--dtype ") + dtype_choice_name(opt_.dtype) + " needs " +
                                                          dtype_name(t.dtype) + " quantization, which this build lacks");
            }
        companions_ = companions_of(ck_);
        result_.units_total = plan_.units.size();
        result_.bytes_total = plan_.total_bytes();
        result_.dtype = plan_.dtype;
        done_.assign(plan_.units.size(), false);
        users_.assign(ck_.shards.size(), 0);
        if (!ck_.from_gguf() && !path_exists(join_path(opt_.model_dir, "tokenizer.json")) &&
            !path_exists(join_path(opt_.model_dir, "tokenizer.model")))
            spdlog::warn("{} has no tokenizer (tokenizer.json or tokenizer.model): the split can be inspected and "
                         "benchmarked, but `rabbit run` will have no tokenizer for text",
                         opt_.model_dir);
    }

    // What an earlier run finished, to verify and keep; refuses what cannot be redone.
    void collect_candidates() {
        if (manifest_ && !opt_.force) {
            if (manifest_->source_fingerprint != plan_.fingerprint)
                throw output_error(out_, "already holds a split of another model or with other options; "
                                         "use --force to replace it, or choose another directory");
            for (const auto& u : manifest_->units) candidates_[u.layout.name] = {u.layout.name, u.file, u.size(), u.xxh3};
        }
        if (path_exists(manifest_path_) && opt_.force) {
            if (!deleted_.empty())
                throw output_error(out_, "--force cannot redo this split: --delete-original removed its source shards");
            remove_file(manifest_path_);
            fsync_directory(out_);
            manifest_.reset();
        }
        if (journal_ && journal_->fingerprint != plan_.fingerprint) {
            if (!journal_->deleted.empty())
                throw output_error(out_, "holds an unfinished split made from this model with other options, and that "
                                         "run already deleted source shards; rerun it with its original options");
            spdlog::info("discarding an unfinished split made with other options");
            journal_.reset();
        }
        if (journal_ && opt_.force && !journal_->deleted.empty())
            throw output_error(out_, "--force cannot redo this split: --delete-original removed its source shards");
        if (journal_ && !opt_.force)
            for (const auto& u : journal_->done) candidates_[u.unit] = u;
    }

    // Marks done the candidates whose files hold exactly their unit; every other unit must
    // still have its source shards.
    void keep_verified_units() {
        for (size_t i = 0; i < plan_.units.size(); ++i) {
            const PlannedUnit& pu = plan_.units[i];
            auto c = candidates_.find(pu.layout.name);
            if (c != candidates_.end() && c->second.file == pu.file &&
                unit_file_matches(pu, join_path(out_, pu.file), c->second.xxh3, opt_.delete_original)) {
                done_[i] = true;
                ++result_.units_reused;
                progress_.advance(pu.layout.file_size());
                progress_.unit_done(pu.layout.name, pu.layout.file_size(), true);
                continue;
            }
            for (uint32_t s : pu.shards)
                if (!ck_.shards[s].present)
                    throw bad_input(join_path(out_, pu.file), "must be written again (missing or damaged), but its "
                                                              "source " + ck_.shard_path(s) +
                                                                  " was deleted by --delete-original");
        }
    }

    // Already split. With --delete-original, remove what an earlier run kept, recording it
    // in the manifest first.
    void finish_up_to_date(ShardReaders& readers, ShardDeleter& deleter) {
        deleter.remove_finished(
            users_, readers,
            [&](DeletedShard d) {
                manifest_->deleted_sources.push_back(std::move(d));
                write_file_atomic(manifest_path_, manifest_->to_json());
            },
            &result_.deleted_shards);
        if (path_exists(journal_path_)) remove_file(journal_path_); // left by a run killed after its manifest
        result_.up_to_date = true;
    }

    // Enough space for the peak of what is still to write? With --delete-original, shards
    // freed on the same disk count.
    void check_free_space() const {
        const dev_t out_dev = device_of(out_);
        std::vector<size_t> left = users_;
        uint64_t need = 0, peak = 0;
        for (size_t i = 0; i < plan_.units.size(); ++i) {
            if (done_[i]) continue;
            need += plan_.units[i].layout.file_size();
            peak = std::max(peak, need);
            if (!opt_.delete_original) continue;
            for (uint32_t s : plan_.units[i].shards)
                if (--left[s] == 0 && ck_.shards[s].present && removal_frees_space(ck_.shard_path(s), out_dev))
                    need -= std::min(need, ck_.shards[s].size);
        }
        for (const auto& c : companions_) peak += c.source.empty() ? c.contents.size() : file_size(c.source);
        peak += k_space_margin;
        const uint64_t avail = free_space(out_);
        if (peak > avail)
            throw output_error(out_, "not enough free space: the split needs " + format_bytes(peak) + ", " +
                                         format_bytes(avail) + " are available");
    }

    // Writes every unit not done, recording each in the journal as it is finished.
    SplitJournal write_units(ShardReaders& readers, ShardDeleter& deleter) {
        SplitJournal j;
        j.fingerprint = plan_.fingerprint;
        j.deleted = deleted_;
        for (size_t i = 0; i < plan_.units.size(); ++i)
            if (done_[i]) j.done.push_back(candidates_.at(plan_.units[i].layout.name));
        write_journal(out_, j);
        auto record_in_journal = [&](DeletedShard d) {
            j.deleted.push_back(std::move(d));
            write_journal(out_, j);
        };
        // Units an earlier run finished may have freed shards it did not get to remove.
        deleter.remove_finished(users_, readers, record_in_journal, &result_.deleted_shards);

        std::vector<uint8_t> in_buf(opt_.chunk_bytes), out_buf(opt_.chunk_bytes);
        std::unique_ptr<ThreadPool> pool; // threads only for a split that quantizes
        if (is_quant_choice(opt_.dtype)) pool = std::make_unique<ThreadPool>(0);
        RowQuantizer quantizer(opt_.chunk_bytes, pool.get());
        for (size_t i = 0; i < plan_.units.size(); ++i) {
            if (done_[i]) continue;
            const PlannedUnit& pu = plan_.units[i];
            const std::string path = join_path(out_, pu.file);
            const uint64_t h = write_unit(pu, path, readers, in_buf, out_buf, quantizer, progress_);
            if (opt_.delete_original) {
                // Read back from the disk itself, not the page cache, before anything is deleted.
                const uint64_t back = hash_file(path, true);
                if (back != h)
                    throw output_error(path, "reads back with checksum " + hex64(back) + " after writing " + hex64(h) +
                                                 ": the disk corrupted it; nothing was deleted");
            }
            done_[i] = true;
            ++result_.units_written;
            result_.bytes_written += pu.layout.file_size();
            j.done.push_back({pu.layout.name, pu.file, pu.layout.file_size(), h});
            write_journal(out_, j);
            for (uint32_t s : pu.shards) --users_[s];
            deleter.remove_finished(users_, readers, record_in_journal, &result_.deleted_shards);
            progress_.unit_done(pu.layout.name, pu.layout.file_size(), false);
        }
        return j;
    }

    // The companion files, then the manifest, last; then the journal goes.
    void write_manifest(const SplitJournal& j) {
        Manifest m;
        m.created_by = std::string("rabbit ") + RABBIT_VERSION;
        m.source_fingerprint = plan_.fingerprint;
        m.dtype = plan_.dtype;
        m.config = plan_.config;
        m.deleted_sources = j.deleted;
        for (const auto& c : companions_) {
            const std::string to = join_path(out_, c.name);
            if (c.source.empty()) write_file_atomic(to, c.contents);
            else copy_file_atomic(c.source, to);
            m.files.push_back(c.name);
        }
        for (const PlannedUnit& pu : plan_.units) {
            const JournalUnit* ju = j.find(pu.layout.name);
            RABBIT_CHECK(ju, "unit missing from the journal at the end: " + pu.layout.name);
            m.units.push_back({pu.layout, pu.kind, pu.layer, pu.file, ju->xxh3});
        }
        write_file_atomic(manifest_path_, m.to_json());
        remove_file(journal_path_);
        fsync_directory(out_);
        result_.files = m.files;
    }

    const SplitOptions& opt_;
    const std::string& out_;
    SplitProgress& progress_;
    const std::string manifest_path_, journal_path_;
    std::optional<SplitJournal> journal_;
    std::optional<Manifest> manifest_;
    std::vector<DeletedShard> deleted_; // source shards earlier --delete-original runs removed
    HfCheckpoint ck_;
    SplitPlan plan_;
    std::vector<Companion> companions_;
    std::map<std::string, JournalUnit> candidates_; // units an earlier run finished, by name
    std::vector<bool> done_;                        // per plan unit: written or kept
    std::vector<size_t> users_;                     // per source shard: units still to write from it
    SplitResult result_;
};

// The checks that need nothing read: before the lock, so a mistyped command creates nothing.
void check_arguments(const SplitOptions& opt) {
    const std::string& out = opt.out_dir;
    if (path_exists(out) && !is_directory(out)) throw output_error(out, "exists and is not a directory");
    if (looks_like_gguf(opt.model_dir)) {
        if (opt.delete_original) throw Error(ExitCode::usage, "--delete-original is for Hugging Face directories, not GGUF files");
    } else if (!is_directory(opt.model_dir)) {
        throw bad_input(opt.model_dir, path_exists(opt.model_dir) ? "is not a directory (nor a .gguf file)"
                                        : ends_with(opt.model_dir, ".gguf") ? "no such file" : "no such directory");
    }
    if (same_file(out, opt.model_dir)) throw Error(ExitCode::usage, "the output directory must differ from MODEL_DIR");
    if (opt.delete_original && ::access(opt.model_dir.c_str(), W_OK) != 0)
        throw output_error(opt.model_dir, "--delete-original must remove files here, but the directory is not writable");
}

} // namespace

std::string split_lock_path(const std::string& out_dir) {
    std::string dir = out_dir;
    while (dir.size() > 1 && dir.back() == '/') dir.pop_back();
    const std::string base = dir.substr(dir.find_last_of('/') + 1); // npos + 1 == 0
    if (base == "." || base == "..") { // names no sibling: use the directory's real path
        char* real = ::realpath(dir.c_str(), nullptr);
        if (!real) throw output_error(out_dir, "cannot resolve: " + errno_text(errno));
        dir = real;
        std::free(real);
    }
    if (dir == "/") throw output_error(out_dir, "cannot hold a split: its lock file would have no directory");
    return dir + ".lock";
}

namespace {

FileLock lock_split_dir(const std::string& out_dir) {
    const std::string path = split_lock_path(out_dir);
    const size_t slash = path.find_last_of('/');
    if (slash != std::string::npos && slash > 0) make_directories(path.substr(0, slash)); // a new OUT's parent
    return FileLock(path, [&] {
        spdlog::info("another rabbit is splitting into {}: waiting for it to finish (lock {})", out_dir, path);
    });
}

} // namespace

SplitLock::SplitLock(const std::string& out_dir) : out_dir_(out_dir), lock_(lock_split_dir(out_dir)) {}

SplitResult run_split(const SplitOptions& opt, SplitProgress& progress) {
    check_arguments(opt);
    const SplitLock lock(opt.out_dir);
    return run_split(opt, progress, lock);
}

SplitResult run_split(const SplitOptions& opt, SplitProgress& progress, const SplitLock& held) {
    RABBIT_CHECK(held.out_dir() == opt.out_dir, "splitting into " + opt.out_dir + " under the lock of " + held.out_dir());
    check_arguments(opt);
    return Splitter(opt, progress).run();
}

} // namespace rabbit
