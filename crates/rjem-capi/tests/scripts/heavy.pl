# Perl workload: hash churn, regexes, sorting, string building.
use strict; use warnings;
my %h;
for my $i (0 .. 300000) {
    my $k = "k" . (($i * 7919) % 60000);
    push @{ $h{$k} }, "v$i" x ($i % 4 + 1);
    delete $h{"k" . (($i * 31) % 60000)} if $i % 3 == 0;
}
my $n = 0; $n += scalar @{ $h{$_} } for keys %h;
print "keys ", scalar(keys %h), " values $n\n";
my $text = join(",", map { "item$_=" . ("ab" x ($_ % 9)) } 0 .. 200000);
my @m = ($text =~ /item(\d+)=(?:ab){8}/g);
print "matches ", scalar(@m), "\n";
my @sorted = sort { $a <=> $b } map { ($_ * 7919) % 100003 } 0 .. 200000;
print "sorted $sorted[0] $sorted[-1] $sorted[100000]\n";
