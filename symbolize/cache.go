package symbolize

import (
	"container/list"
	"os"
	"sync"
	"time"
)

// revalidateEvery is how often Module stats a cached module's file to notice that it
// was rebuilt or installed since: a CI job may compile and run a program under the
// same path several times in one trace.
const revalidateEvery = time.Second

// Cache holds parsed modules by path. Each file is parsed at most once while it stays
// unchanged on disk; past maxModules the least recently used module is evicted. A
// file that cannot be opened or parsed is remembered as bad. Module notices a file
// replaced on disk (checking at most once a second); the hot paths (Unwind, Locate,
// Symbolize) use what is cached. Safe for concurrent use.
type Cache struct {
	mu         sync.Mutex
	max        int
	revalidate time.Duration
	entries    map[string]*list.Element // of *cacheEntry
	lru        list.List                // front: most recently used
}

type cacheEntry struct {
	path    string
	mod     *Module
	err     error
	ident   fileIdent // zero when the file could not be stat'ed
	checked time.Time
}

// NewCache returns a cache of at most maxModules parsed modules (at least 1).
func NewCache(maxModules int) *Cache {
	if maxModules < 1 {
		maxModules = 1
	}
	return &Cache{max: maxModules, revalidate: revalidateEvery, entries: make(map[string]*list.Element)}
}

// Module returns the parsed module at path.
func (c *Cache) Module(path string) (*Module, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := time.Now()
	if el, ok := c.entries[path]; ok {
		e := el.Value.(*cacheEntry)
		if now.Sub(e.checked) < c.revalidate || unchanged(path, e) {
			e.checked = now
			c.lru.MoveToFront(el)
			return e.mod, e.err
		}
		c.lru.Remove(el)
		delete(c.entries, path)
	}
	e := &cacheEntry{path: path, checked: now, ident: statIdent(path)}
	e.err = guard(path, func() (err error) {
		e.mod, err = openModule(path)
		return err
	})
	if e.mod != nil {
		e.ident = e.mod.ident
	}
	c.entries[path] = c.lru.PushFront(e)
	for c.lru.Len() > c.max {
		old := c.lru.Back()
		c.lru.Remove(old)
		delete(c.entries, old.Value.(*cacheEntry).path)
	}
	return e.mod, e.err
}

// cached returns the module at path without checking the file on disk, for the
// unwinder's hot path: a stat per frame would cost more than the unwind. Files are
// rechecked by Module, which exec and symbolization go through.
func (c *Cache) cached(path string) (*Module, error) {
	c.mu.Lock()
	if el, ok := c.entries[path]; ok {
		c.lru.MoveToFront(el)
		e := el.Value.(*cacheEntry)
		c.mu.Unlock()
		return e.mod, e.err
	}
	c.mu.Unlock()
	return c.Module(path)
}

// unchanged: the file at path is the one e was parsed from, or is gone from
// disk, which is no new file: a process may still run it (go test deletes its
// test binaries before the report is made).
func unchanged(path string, e *cacheEntry) bool {
	id := statIdent(path)
	return id == e.ident || id == (fileIdent{}) && e.mod != nil
}

func statIdent(path string) fileIdent {
	fi, err := os.Stat(path)
	if err != nil {
		return fileIdent{}
	}
	return identOf(fi)
}
