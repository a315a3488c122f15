// mobileprune_runner: time ExecuTorch programs (.pte) on the device it runs on.
//
// The phone-side half of mobileprune's AdbRunner (mobileprune/devices/adb.py), and the same
// program built for the host so that the tests run it end to end. It does what the host's
// Python worker (mobileprune/devices/host_worker.py) does, with the same rules, so that a
// phone's table and the host's are measured alike:
//   - the thread pool is sized before any method loads (a loaded method keeps its pool);
//   - warm-up calls, then timed calls of forward, wall clock per call;
//   - with --reference, the target is timed in turns with a reference program: PAIR_BLOCK
//     calls of one, then of the other; the first call of each turn is dropped (XNNPACK
//     delegates share a workspace that the first call after another program re-plans), and
//     each turn gives one ratio target/reference;
//   - per-op events come from a second, profiled load of the program (ETDump), never from the
//     timed calls: profiling adds overhead.
// Inputs and outputs are .npy files (float32, C order), so the host reads them with numpy.
// One JSON line per program on stdout; anything else the runtime prints goes to stderr.
//
//   mobileprune_runner --model a.pte [--model b.pte ...] [--threads 1] [--warmup 5]
//       [--repeats 50] [--reference ref.pte] [--inputs x0.npy,x1.npy ...]
//       [--outputs-dir DIR] [--etdump-dir DIR] [--pause-ms 0] [--results FILE]
// --results: each JSON line is also appended to FILE as soon as it is made, so that the lines of a
// run whose connection dropped can be collected on reconnect instead of measured again.
// --pause-ms: a cool-down pause before each program after the first (phones heat up and slow
// down under a long series of runs; the pause and the reference pairing keep them comparable).
// Several --inputs give several input sets: each is run once (no timing) and its outputs are
// written as DIR/<model>_<set>_<output>.npy ("output_sets" in the JSON line).
#include <executorch/devtools/etdump/etdump_flatcc.h>
#include <executorch/extension/module/module.h>
#include <executorch/extension/tensor/tensor.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <memory>
#include <random>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

// The wheel ships the thread pool library but not its header (only threadpool_guard.h): the
// two functions used are declared here as the library defines them.
namespace executorch::extension::threadpool {
class ThreadPool {
 public:
  bool _unsafe_reset_threadpool(uint32_t num_threads);
  size_t get_thread_count() const;
};
ThreadPool* get_threadpool();
}  // namespace executorch::extension::threadpool

using executorch::extension::TensorPtr;
using executorch::extension::make_tensor_ptr;
using executorch::extension::module::Module;
using executorch::runtime::EValue;
using executorch::runtime::Error;

namespace {

constexpr int PAIR_BLOCK = 4;  // calls per turn, as host_worker.PAIR_BLOCK

struct Options {
  std::vector<std::string> models;
  std::vector<std::vector<std::string>> input_sets;
  std::string reference, outputs_dir, etdump_dir, results;
  int threads = 1, warmup = 5, repeats = 50, pause_ms = 0;
};

[[noreturn]] void usage(const std::string& why) {
  std::fprintf(stderr, "mobileprune_runner: %s\n", why.c_str());
  std::exit(2);
}

std::vector<std::string> split_commas(const std::string& text) {
  std::vector<std::string> parts;
  std::stringstream stream(text);
  for (std::string part; std::getline(stream, part, ',');) {
    if (!part.empty()) parts.push_back(part);
  }
  return parts;
}

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string flag = argv[i];
    if (i + 1 >= argc) usage("missing value after " + flag);
    std::string value = argv[++i];
    if (flag == "--model") o.models.push_back(value);
    else if (flag == "--inputs") o.input_sets.push_back(split_commas(value));
    else if (flag == "--reference") o.reference = value;
    else if (flag == "--outputs-dir") o.outputs_dir = value;
    else if (flag == "--etdump-dir") o.etdump_dir = value;
    else if (flag == "--results") o.results = value;
    else if (flag == "--threads") o.threads = std::stoi(value);
    else if (flag == "--warmup") o.warmup = std::stoi(value);
    else if (flag == "--repeats") o.repeats = std::stoi(value);
    else if (flag == "--pause-ms") o.pause_ms = std::stoi(value);
    else usage("unknown flag " + flag);
  }
  if (o.models.empty()) usage("no --model given");
  if (o.threads < 1 || o.repeats < 0 || o.warmup < 0 || o.pause_ms < 0)
    usage("threads >= 1; repeats, warmup and pause >= 0");
  return o;
}

std::string json_string(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\', out += c;
    else if (static_cast<unsigned char>(c) < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", c);
      out += buf;
    } else out += c;
  }
  return out + "\"";
}

std::string json_numbers(const std::vector<double>& values) {
  std::string out = "[";
  char buf[32];
  for (size_t i = 0; i < values.size(); ++i) {
    std::snprintf(buf, sizeof buf, "%s%.6f", i ? "," : "", values[i]);
    out += buf;
  }
  return out + "]";
}

std::string json_strings(const std::vector<std::string>& values) {
  std::string out = "[";
  for (size_t i = 0; i < values.size(); ++i) out += (i ? "," : "") + json_string(values[i]);
  return out + "]";
}

// .npy files: numpy's format 1.0 — a magic string, a header dict, then the raw data.
std::vector<float> read_npy(const std::string& path, size_t expected) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read input " + path);
  char magic[8];
  in.read(magic, 8);
  if (!in || std::memcmp(magic, "\x93NUMPY", 6) != 0) throw std::runtime_error(path + " is not a .npy file");
  uint32_t header_len = 0;
  if (magic[6] == 1) {
    uint16_t len16 = 0;
    in.read(reinterpret_cast<char*>(&len16), 2);
    header_len = len16;
  } else {
    in.read(reinterpret_cast<char*>(&header_len), 4);
  }
  std::string header(header_len, ' ');
  in.read(header.data(), header_len);
  if (header.find("'<f4'") == std::string::npos || header.find("'fortran_order': False") == std::string::npos)
    throw std::runtime_error(path + ": inputs must be float32 in C order");
  std::vector<float> data(expected);
  in.read(reinterpret_cast<char*>(data.data()), static_cast<std::streamsize>(expected * sizeof(float)));
  if (static_cast<size_t>(in.gcount()) != expected * sizeof(float) || in.peek() != EOF)
    throw std::runtime_error(path + " does not hold " + std::to_string(expected) + " floats");
  return data;
}

void write_npy(const std::string& path, const float* data, const std::vector<int64_t>& shape) {
  size_t count = 1;
  std::string dims;
  for (auto d : shape) count *= static_cast<size_t>(d), dims += std::to_string(d) + ", ";
  std::string header = "{'descr': '<f4', 'fortran_order': False, 'shape': (" + dims + "), }";
  size_t total = 10 + header.size() + 1;
  header += std::string((64 - total % 64) % 64, ' ') + "\n";
  std::ofstream out(path, std::ios::binary);
  uint16_t len = static_cast<uint16_t>(header.size());
  out.write("\x93NUMPY\x01\x00", 8);
  out.write(reinterpret_cast<const char*>(&len), 2);
  out << header;
  out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(count * sizeof(float)));
  if (!out) throw std::runtime_error("cannot write " + path);
}

void check(Error error, const std::string& what) {
  if (error != Error::Ok) throw std::runtime_error(what + " failed (ExecuTorch error " +
                                                   std::to_string(static_cast<int>(error)) + ")");
}

// One loaded program and the inputs it is called with.
struct Program {
  std::unique_ptr<Module> module;
  std::vector<TensorPtr> tensors;
  std::vector<EValue> inputs;

  Program(const std::string& path, std::unique_ptr<executorch::runtime::EventTracer> tracer = nullptr)
      : module(std::make_unique<Module>(path, Module::LoadMode::File, std::move(tracer))) {
    check(module->load_method("forward"), "loading forward of " + path);
  }

  // Inputs from .npy files, or standard normal values (seeded) when none are given.
  void set_inputs(const std::vector<std::string>& files) {
    auto meta = module->method_meta("forward");
    if (!meta.ok()) throw std::runtime_error("no method meta");
    size_t n = meta->num_inputs();
    if (!files.empty() && files.size() != n)
      throw std::runtime_error("the program takes " + std::to_string(n) + " inputs, " +
                               std::to_string(files.size()) + " given");
    std::mt19937 rng(0);
    std::normal_distribution<float> normal;
    tensors.clear();
    inputs.clear();
    for (size_t i = 0; i < n; ++i) {
      auto info = meta->input_tensor_meta(i);
      if (!info.ok()) throw std::runtime_error("input " + std::to_string(i) + " is not a tensor");
      std::vector<int32_t> sizes(info->sizes().begin(), info->sizes().end());
      size_t count = 1;
      for (auto s : sizes) count *= static_cast<size_t>(s);
      std::vector<float> data;
      if (files.empty()) {
        data.resize(count);
        for (auto& v : data) v = normal(rng);
      } else {
        data = read_npy(files[i], count);
      }
      tensors.push_back(make_tensor_ptr(sizes, std::move(data)));
      inputs.emplace_back(tensors.back());
    }
  }

  std::vector<EValue> call() {
    auto result = module->execute("forward", inputs);
    if (!result.ok()) check(result.error(), "forward");
    return std::move(*result);
  }
};

double call_ms(Program& p) {
  auto start = std::chrono::steady_clock::now();
  p.call();
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  size_t n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

std::string base_name(const std::string& path) {
  auto slash = path.find_last_of('/');
  std::string name = slash == std::string::npos ? path : path.substr(slash + 1);
  auto dot = name.find_last_of('.');
  return dot == std::string::npos ? name : name.substr(0, dot);
}

std::vector<std::string> save_outputs(const std::vector<EValue>& outputs, const std::string& stem) {
  std::vector<std::string> names;
  for (size_t j = 0; j < outputs.size(); ++j) {
    if (!outputs[j].isTensor()) continue;
    const auto& t = outputs[j].toTensor();
    std::vector<int64_t> shape(t.sizes().begin(), t.sizes().end());
    names.push_back(stem + "_" + std::to_string(j) + ".npy");
    write_npy(names.back(), t.const_data_ptr<float>(), shape);
  }
  return names;
}

std::string measure(const std::string& path, const Options& o, Program* reference, size_t index) {
  // The settings go into every line: results collected after a drop must match the request.
  std::string line = "{\"artifact\": " + json_string(path) + ", \"threads\": " + std::to_string(o.threads) +
                     ", \"warmup\": " + std::to_string(o.warmup) + ", \"repeats\": " + std::to_string(o.repeats) +
                     ", \"reference\": " + json_string(o.reference) +
                     ", \"op_events\": " + (o.etdump_dir.empty() ? "false" : "true");
  Program target(path);
  std::string stem = o.outputs_dir + "/" + std::to_string(index) + "_" + base_name(path);
  if (o.input_sets.size() > 1) {  // outputs per input set, untimed
    std::string sets = "[";
    for (size_t k = 0; k < o.input_sets.size(); ++k) {
      target.set_inputs(o.input_sets[k]);
      sets += (k ? "," : "") + json_strings(save_outputs(target.call(), stem + "_" + std::to_string(k)));
    }
    return line + ", \"output_sets\": " + sets + "]}";
  }
  target.set_inputs(o.input_sets.empty() ? std::vector<std::string>{} : o.input_sets[0]);
  std::vector<double> samples, reference_samples, ratios;
  if (reference == nullptr) {
    for (int i = 0; i < o.warmup; ++i) target.call();
    for (int i = 0; i < o.repeats; ++i) samples.push_back(call_ms(target));
  } else {
    for (int i = 0; i < o.warmup; ++i) reference->call(), target.call();
    const int kept = PAIR_BLOCK - 1;
    for (int turn = 0; turn < (o.repeats + kept - 1) / kept; ++turn) {
      std::vector<double> ref_turn, target_turn;
      reference->call();
      for (int i = 0; i < kept; ++i) ref_turn.push_back(call_ms(*reference));
      target.call();
      for (int i = 0; i < kept; ++i) target_turn.push_back(call_ms(target));
      samples.insert(samples.end(), target_turn.begin(), target_turn.end());
      reference_samples.insert(reference_samples.end(), ref_turn.begin(), ref_turn.end());
      ratios.push_back(median(target_turn) / median(ref_turn));
    }
  }
  line += ", \"samples_ms\": " + json_numbers(samples);
  if (reference) line += ", \"reference_samples_ms\": " + json_numbers(reference_samples) +
                         ", \"ratios\": " + json_numbers(ratios);
  if (!o.outputs_dir.empty()) line += ", \"outputs\": " + json_strings(save_outputs(target.call(), stem));
  if (!o.etdump_dir.empty()) {
    // A second load with the profiler attached: its overhead stays out of the samples above.
    auto tracer = std::make_unique<executorch::etdump::ETDumpGen>();
    auto* etdump = tracer.get();
    Program profiled(path, std::move(tracer));
    profiled.inputs = target.inputs;
    for (int i = 0; i < o.warmup + o.repeats; ++i) profiled.call();
    auto dump = etdump->get_etdump_data();
    std::string file = o.etdump_dir + "/" + std::to_string(index) + "_" + base_name(path) + ".etdump";
    std::ofstream out(file, std::ios::binary);
    out.write(static_cast<const char*>(dump.buf), static_cast<std::streamsize>(dump.size));
    if (!out) throw std::runtime_error("cannot write " + file);
    line += ", \"etdump\": " + json_string(file);
  }
  return line + "}";
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  try {
    o = parse(argc, argv);
  } catch (const std::exception& e) {  // std::stoi on a value that is not a number
    usage(std::string("bad value: ") + e.what());
  }
  if (o.input_sets.size() > 1 && o.outputs_dir.empty()) usage("several --inputs need --outputs-dir");
  executorch::extension::threadpool::get_threadpool()->_unsafe_reset_threadpool(o.threads);
  std::unique_ptr<Program> reference;
  int failed = 0;
  FILE* results = o.results.empty() ? nullptr : std::fopen(o.results.c_str(), "a");
  if (!o.results.empty() && results == nullptr) usage("cannot write " + o.results);
  try {
    if (!o.reference.empty()) {
      reference = std::make_unique<Program>(o.reference);
      reference->set_inputs({});
    }
  } catch (const std::exception& e) {
    std::printf("{\"artifact\": %s, \"error\": %s}\n", json_string(o.reference).c_str(),
                json_string(std::string("reference: ") + e.what()).c_str());
    return 1;
  }
  for (size_t i = 0; i < o.models.size(); ++i) {
    std::string line;
    if (i > 0 && o.pause_ms > 0) std::this_thread::sleep_for(std::chrono::milliseconds(o.pause_ms));
    try {
      line = measure(o.models[i], o, reference.get(), i);
    } catch (const std::exception& e) {
      line = "{\"artifact\": " + json_string(o.models[i]) + ", \"error\": " + json_string(e.what()) + "}";
      ++failed;
    }
    if (results != nullptr) {
      std::fprintf(results, "%s\n", line.c_str());
      std::fflush(results);
    }
    std::printf("%s\n", line.c_str());
    std::fflush(stdout);
  }
  return failed ? 1 : 0;
}
