# The runner cross-compiled for 64-bit ARM Linux with Debian's g++-aarch64-linux-gnu, against the
# aarch64 build of the pinned executorch wheel (the same headers, CMake config and libexecutorch*
# libraries as the x86-64 one): the tests run it on an emulated arm64 device (qemu-user), so the
# ARM kernels of XNNPACK compute what a phone's would. `make runner-arm64` builds it.
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)
set(CMAKE_CXX_COMPILER aarch64-linux-gnu-g++)
# Programs are the build machine's; the wheel's package config lies outside any sysroot.
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
