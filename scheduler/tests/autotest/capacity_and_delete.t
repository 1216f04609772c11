#!/usr/bin/perl
# Capacity the way proxies understand it, against a pool with room for one session
# (BP_SMALL_NG_PORT): a new call beyond it gets `load limit` when `supports` has it, else
# `error` "Parallel session limit reached"; the answer and re-offers of the admitted call are
# never refused; an answer for an unknown call is "Unknown call-id"; a delete of an unknown
# call is ok with rtpengine's warning (error with `fatal`); after a delete the room is back.
use strict;
use warnings;
use NGCP::Rtpengine;
use NGCP::Rtpengine::AutoTest;
use Test::More;

$ENV{BP_SMALL_NG_PORT} or plan skip_all => 'BP_SMALL_NG_PORT not set (run by scheduler/tests/ng_autotest.rs)';
$ENV{RTPENGINE_PORT} = $ENV{BP_SMALL_NG_PORT};
autotest_init() or die;
my $ng = NGCP::Rtpengine->new('127.0.0.1', $ENV{BP_SMALL_NG_PORT});

my ($sock_a, $sock_b) = new_call(['127.0.0.1', 0], ['127.0.0.1', 0]);
my ($pa, $pb) = ($sock_a->sockport, $sock_b->sockport);
my $pcmu = "v=0\no=- 1 1 IN IP4 127.0.0.1\ns=-\nc=IN IP4 127.0.0.1\nt=0 0\nm=audio $pa RTP/AVP 0\na=sendrecv\n";
my $opus = "v=0\no=- 2 1 IN IP4 127.0.0.1\ns=-\nc=IN IP4 127.0.0.1\nt=0 0\nm=audio $pb RTP/AVP 96\n"
	. "a=rtpmap:96 opus/48000/2\na=sendrecv\n";
my %tc = (codec => { transcode => ['opus'] });

my $first = $ng->req({ command => 'offer', 'call-id' => 'cap-1', 'from-tag' => 'f1', sdp => $pcmu, %tc,
	supports => ['load limit'] });
is $first->{result}, 'ok', 'the first call fits';

my $limited = $ng->req({ command => 'offer', 'call-id' => 'cap-2', 'from-tag' => 'f2', sdp => $pcmu, %tc,
	supports => ['load limit'] });
is $limited->{result}, 'load limit', 'a new call beyond the headroom: load limit (Kamailio tries the next node)';
is $limited->{message}, 'Parallel session limit reached', 'with the message Kamailio logs';

my $r = eval { $ng->req({ command => 'offer', 'call-id' => 'cap-3', 'from-tag' => 'f3', sdp => $pcmu, %tc }) };
like $@, qr/Parallel session limit reached/, 'without supports: error with the string OpenSIPS fails over on';

my $answered = $ng->req({ command => 'answer', 'call-id' => 'cap-1', 'from-tag' => 'f1', 'to-tag' => 't1',
	sdp => $opus, supports => ['load limit'] });
is $answered->{result}, 'ok', 'the admitted call is answered at full capacity';

(my $hold = $pcmu) =~ s/c=IN IP4 127.0.0.1/c=IN IP4 0.0.0.0/;
$hold =~ s/a=sendrecv/a=sendonly/;
my $reoffer = $ng->req({ command => 'offer', 'call-id' => 'cap-1', 'from-tag' => 'f1', 'to-tag' => 't1',
	sdp => $hold, %tc, supports => ['load limit'] });
is $reoffer->{result}, 'ok', 'a re-offer (hold) of a known call is never refused';
my $reverse = $ng->req({ command => 'offer', 'call-id' => 'cap-1', 'from-tag' => 't1', 'to-tag' => 'f1',
	sdp => $opus, supports => ['load limit'] });
is $reverse->{result}, 'ok', 'a re-offer from the answerer side is never refused';
like $reverse->{sdp}, qr{m=audio \d+ RTP/AVP 96 0\r\n}, 'a re-offer without codec flags keeps the transcoding (the other side\'s PCMU added)';
my $plain = $ng->req({ command => 'offer', 'call-id' => 'cap-1', 'from-tag' => 'f1', 'to-tag' => 't1',
	sdp => $pcmu });
like $plain->{sdp}, qr{m=audio \d+ RTP/AVP 0 96\r\n}, 'and so does the offerer\'s re-INVITE without flags';

$r = eval { $ng->req({ command => 'answer', 'call-id' => 'nobody', 'from-tag' => 'x', 'to-tag' => 'y',
	sdp => $opus }) };
like $@, qr/Unknown call-id/, 'an answer for an unknown call: Unknown call-id';

my $del = $ng->req({ command => 'delete', 'call-id' => 'nobody', 'from-tag' => 'x' });
is $del->{result}, 'ok', 'delete of an unknown call is ok';
is $del->{warning}, "Call-ID not found or tags didn't match", 'with rtpengine\'s warning';
$r = eval { $ng->req({ command => 'delete', 'call-id' => 'nobody', 'from-tag' => 'x', flags => ['fatal'] }) };
like $@, qr/Call-ID not found/, 'and an error with the fatal flag';

my $gone = $ng->req({ command => 'delete', 'call-id' => 'cap-1', 'from-tag' => 'f1' });
is $gone->{result}, 'ok', 'the admitted call is deleted';
ok exists $gone->{totals}{RTP}, 'with totals';
$r = eval { $ng->req({ command => 'query', 'call-id' => 'cap-1' }) };
like $@, qr/Unknown call-id/, 'a deleted call is unknown to query';

my $again = $ng->req({ command => 'offer', 'call-id' => 'cap-4', 'from-tag' => 'f4', sdp => $pcmu, %tc,
	supports => ['load limit'] });
is $again->{result}, 'ok', 'after the delete a new call fits again';
$ng->req({ command => 'delete', 'call-id' => 'cap-4', 'from-tag' => 'f4' });

# Bad input gets rtpengine-style errors, never silence.
$r = eval { $ng->req({ command => 'offer', 'call-id' => 'bad', 'from-tag' => 'b', sdp => "garbage" }) };
like $@, qr/Failed to parse SDP/, 'bad SDP: Failed to parse SDP';
$r = eval { $ng->req({ command => 'offer', 'call-id' => 'bad', 'from-tag' => 'b' }) };
like $@, qr/No SDP body in message/, 'no SDP';
(my $srtp = $pcmu) =~ s{RTP/AVP}{RTP/SAVP};
$r = eval { $ng->req({ command => 'offer', 'call-id' => 'bad', 'from-tag' => 'b', sdp => $srtp }) };
like $@, qr/Unsupported transport: SRTP/, 'SRTP refused with a clear reason';

done_testing();
