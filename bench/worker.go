package bench

import (
	"errors"
	"fmt"
	"io"
	"net/rpc"
	"net/rpc/jsonrpc"
	"os/exec"
	"sync"
)

// Empty is the argument or reply of RPCs that carry nothing.
type Empty struct{}

// FleetService serves a Fleet over net/rpc; a worker process serves it
// with JSON-RPC on its stdin and stdout.
type FleetService struct {
	mu sync.Mutex
	f  *Fleet
}

func (s *FleetService) fleet() (*Fleet, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.f == nil {
		return nil, errors.New("fleet not initialised")
	}
	return s.f, nil
}

// Init builds the fleet.
func (s *FleetService) Init(spec FleetSpec, _ *Empty) error {
	f, err := NewFleet(spec)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.f != nil {
		f.Close()
		return errors.New("fleet already initialised")
	}
	s.f = f
	return nil
}

// Connect runs a connect ramp (see Fleet.Connect).
func (s *FleetService) Connect(tr Transport, reply *PhaseResult) error {
	f, err := s.fleet()
	if err != nil {
		return err
	}
	*reply = f.Connect(tr)
	return nil
}

// Tick reports progress (see Fleet.Tick), with the process's CPU time.
func (s *FleetService) Tick(_ Empty, reply *Tick) error {
	f, err := s.fleet()
	if err != nil {
		return err
	}
	t, err := f.Tick()
	t.CPU = SelfCPU()
	*reply = t
	return err
}

// SetDropping starts or stops dropping connections (see Fleet.SetDropping).
func (s *FleetService) SetDropping(rate float64, _ *Empty) error {
	f, err := s.fleet()
	if err != nil {
		return err
	}
	f.SetDropping(rate)
	return nil
}

// Moved reports the storm's progress (see Fleet.Moved).
func (s *FleetService) Moved(withTimes bool, reply *MoveStatus) error {
	f, err := s.fleet()
	if err != nil {
		return err
	}
	*reply = f.Moved(withTimes)
	return nil
}

// Finish drains and accounts (see Fleet.Finish).
func (s *FleetService) Finish(exp Expectations, reply *FleetResult) error {
	f, err := s.fleet()
	if err != nil {
		return err
	}
	*reply = f.Finish(exp)
	return nil
}

// Close closes every connection.
func (s *FleetService) Close(_ Empty, _ *Empty) error {
	f, err := s.fleet()
	if err != nil {
		return err
	}
	f.Close()
	return nil
}

type pipeRWC struct {
	io.Reader
	io.Writer
	closers []io.Closer
}

func (p pipeRWC) Close() error {
	var errs []error
	for _, c := range p.closers {
		errs = append(errs, c.Close())
	}
	return errors.Join(errs...)
}

// ServeWorker serves one fleet over JSON-RPC on in and out until in ends.
// It is the body of the hidden --worker mode. Nothing else may write to
// out.
func ServeWorker(in io.Reader, out io.Writer) error {
	srv := rpc.NewServer()
	svc := &FleetService{}
	if err := srv.RegisterName("Fleet", svc); err != nil {
		return fmt.Errorf("worker: %w", err)
	}
	srv.ServeCodec(jsonrpc.NewServerCodec(pipeRWC{Reader: in, Writer: out}))
	if f, err := svc.fleet(); err == nil {
		f.Close()
	}
	return nil
}

// fleetClient is a fleet as the runner sees it: in this process or in a
// worker.
type fleetClient interface {
	Connect(tr Transport) (PhaseResult, error)
	Tick() (Tick, error)
	SetDropping(rate float64) error
	Moved(withTimes bool) (MoveStatus, error)
	Finish(exp Expectations) (FleetResult, error)
	Close() error
}

type localFleet struct{ f *Fleet }

func (l localFleet) Connect(tr Transport) (PhaseResult, error) { return l.f.Connect(tr), nil }
func (l localFleet) Tick() (Tick, error)                       { return l.f.Tick() }
func (l localFleet) SetDropping(rate float64) error            { l.f.SetDropping(rate); return nil }
func (l localFleet) Moved(withTimes bool) (MoveStatus, error)  { return l.f.Moved(withTimes), nil }
func (l localFleet) Finish(e Expectations) (FleetResult, error) {
	return l.f.Finish(e), nil
}
func (l localFleet) Close() error { l.f.Close(); return nil }

// remoteFleet is a fleet in a worker process (or, in tests, behind any
// pipe).
type remoteFleet struct {
	c    *rpc.Client
	cmd  *exec.Cmd
	name string
}

func newRemoteFleet(name string, rwc io.ReadWriteCloser, spec FleetSpec) (*remoteFleet, error) {
	r := &remoteFleet{c: jsonrpc.NewClient(rwc), name: name}
	if err := r.c.Call("Fleet.Init", spec, &Empty{}); err != nil {
		r.c.Close()
		return nil, fmt.Errorf("%s: init: %w", name, err)
	}
	return r, nil
}

// startWorker re-executes exe with --worker and initialises its fleet.
func startWorker(exe string, spec FleetSpec, stderr io.Writer) (*remoteFleet, error) {
	name := fmt.Sprintf("worker %d", spec.Index)
	cmd := exec.Command(exe, "--worker")
	cmd.Stderr = stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("%s: start %s: %w", name, exe, err)
	}
	r, err := newRemoteFleet(name, pipeRWC{Reader: out, Writer: in, closers: []io.Closer{in}}, spec)
	if err != nil {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		return nil, err
	}
	r.cmd = cmd
	return r, nil
}

func (r *remoteFleet) call(method string, args, reply any) error {
	if err := r.c.Call("Fleet."+method, args, reply); err != nil {
		return fmt.Errorf("%s: %s: %w", r.name, method, err)
	}
	return nil
}

func (r *remoteFleet) Connect(tr Transport) (PhaseResult, error) {
	var res PhaseResult
	err := r.call("Connect", tr, &res)
	return res, err
}

func (r *remoteFleet) Tick() (Tick, error) {
	var t Tick
	err := r.call("Tick", Empty{}, &t)
	return t, err
}

func (r *remoteFleet) SetDropping(rate float64) error {
	return r.call("SetDropping", rate, &Empty{})
}

func (r *remoteFleet) Moved(withTimes bool) (MoveStatus, error) {
	var st MoveStatus
	err := r.call("Moved", withTimes, &st)
	return st, err
}

func (r *remoteFleet) Finish(e Expectations) (FleetResult, error) {
	var res FleetResult
	err := r.call("Finish", e, &res)
	return res, err
}

func (r *remoteFleet) Close() error {
	err := r.call("Close", Empty{}, &Empty{})
	if cerr := r.c.Close(); cerr != nil && err == nil && !errors.Is(cerr, rpc.ErrShutdown) {
		err = fmt.Errorf("%s: %w", r.name, cerr)
	}
	if r.cmd != nil {
		if werr := r.cmd.Wait(); werr != nil && err == nil {
			err = fmt.Errorf("%s: %w", r.name, werr)
		}
	}
	return err
}
