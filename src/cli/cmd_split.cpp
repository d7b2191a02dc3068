// SPDX-License-Identifier: Apache-2.0
// rabbit split MODEL_DIR -o OUT
#include "cli/commands.h"
#include "cli/model_args.h"
#include "cli/option_checks.h"
#include "cli/progress.h"
#include "common/error.h"
#include "common/file_io.h"
#include "common/units.h"
#include "split/journal.h"
#include "split/splitter.h"

#include <spdlog/spdlog.h>

#include <memory>

namespace rabbit {

Command add_split_command(CLI::App& app, const GlobalOptions& global) {
    auto opt = std::make_shared<SplitOptions>();
    auto dtype = std::make_shared<std::string>("auto");
    auto chunk = std::make_shared<std::string>();
    CLI::App* sub = app.add_subcommand("split", "Turn a Hugging Face checkpoint or a GGUF into per-layer shard files for streaming");
    sub->add_option("MODEL_DIR", opt->model_dir, "Hugging Face model directory (config.json, safetensors weights, tokenizer), "
                                                 "a .gguf file (the first part of a split set), or a hub id ORG/NAME[@REV][:QUANT] in the Hugging Face cache")
        ->required();
    sub->add_option("-o,--out", opt->out_dir, "Output directory; a split interrupted into it resumes")->required();
    sub->add_option("--dtype", *dtype,
                    "Matrix dtype: auto (bf16 for f16/bf16 sources, f32 sources stay f32), keep, bf16, f16, f32; or "
                    "quantized: q8_0, q6_k, q5_k, q5_1, q5_0, q4_k, q4_1, q4_0, or q4_k_m (llama.cpp's Q4_K_M mix). "
                    "Norms and biases stay f32; see docs/FORMAT.md")
        ->check(CLI::IsMember(dtype_choice_names()))
        ->default_str("auto");
    sub->add_flag("--force", opt->force, "Rewrite every unit, replacing a split OUT already holds");
    sub->add_flag("--delete-original", opt->delete_original,
                  "Remove each source shard as soon as every unit read from it is written and verified");
    size_option(sub->add_option("--chunk", *chunk, "Bytes read, converted and written at a time; bounds memory use (default 16M)"), "");

    auto run = [opt, dtype, chunk, &global]() {
        opt->model_dir = local_model_path(opt->model_dir, global);
        opt->dtype = *parse_dtype_choice(*dtype);
        if (!chunk->empty()) {
            uint64_t c = *parse_size(*chunk);
            if (c < 4096 || c > (1ull << 30))
                throw Error(ExitCode::usage, "--chunk " + *chunk + ": expected a size from 4K to 1G");
            opt->chunk_bytes = size_t(c);
        }
        const bool tty = stderr_is_terminal();
        ConsoleProgress progress(!global.quiet && tty, !global.quiet && !tty);
        SplitResult r;
        try {
            r = run_split(*opt, progress);
        } catch (const Error& e) {
            progress.finish();
            const bool resumable = e.code() == ExitCode::interrupted || e.code() == ExitCode::output;
            if (resumable && path_exists(join_path(opt->out_dir, k_journal_file)))
                throw Error(e.code(), std::string(e.what()) + "; finished units are kept: run the same command again to resume");
            throw;
        }
        if (r.up_to_date) {
            spdlog::info("{} already holds this split: {} units ({}) verified; nothing to do (--force rewrites it)",
                         opt->out_dir, r.units_total, format_bytes(r.bytes_total));
            return 0;
        }
        const double rate = r.seconds > 0 ? double(r.bytes_written) / r.seconds : 0;
        std::string kept = r.units_reused ? ", " + std::to_string(r.units_reused) + " kept from an earlier run" : "";
        spdlog::info("split {} into {}: {} units, {} of {} weights{}; wrote {} in {} ({})", opt->model_dir, opt->out_dir,
                     r.units_total, format_bytes(r.bytes_total), r.dtype, kept, format_bytes(r.bytes_written),
                     format_duration(r.seconds), format_rate(rate));
        return 0;
    };
    return {sub, run};
}

} // namespace rabbit
