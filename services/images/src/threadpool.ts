// libuv runs file system calls on a pool of 4 threads unless told otherwise. Every image write is
// several of them (write, fsync, rename, folder fsync) that mostly wait on the disk, so a bigger
// pool keeps more of them in flight. Imported first by main.ts, before anything touches the pool
// (it is created on first use); an explicit UV_THREADPOOL_SIZE in the environment still wins.
process.env.UV_THREADPOOL_SIZE ??= '16';
